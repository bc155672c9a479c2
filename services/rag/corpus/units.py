"""Sentences and retrieval units of a corpus, as flat arrays (the bundle stores exactly these)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import BuildConfig
from .documents import PROSE, Document
from .scripts import count_words
from .segment import Span, split_sentences

__all__ = [
    "Segmentation",
    "document_sentences",
    "iter_unit_texts",
    "join_title",
    "sample_unit_texts",
    "segment_corpus",
    "unit_body",
    "unit_texts",
]


@dataclass(frozen=True)
class Segmentation:
    """Row-aligned arrays. Sentence i is documents[sent_doc[i]].text[sent_start[i]:sent_end[i]].

    Unit j covers sentences unit_first[j] .. unit_last[j]-1 of one document (unit_doc[j]).
    """

    sent_doc: np.ndarray  # int32
    sent_idx: np.ndarray  # int32, index of the sentence inside its document
    sent_start: np.ndarray  # int64
    sent_end: np.ndarray  # int64
    unit_doc: np.ndarray  # int32
    unit_first: np.ndarray  # int64
    unit_last: np.ndarray  # int64 (exclusive)

    @property
    def n_sentences(self) -> int:
        return len(self.sent_doc)

    @property
    def n_units(self) -> int:
        return len(self.unit_doc)


def document_sentences(doc: Document, max_chars: int, kinds: Collection[str] = PROSE) -> list[Span]:
    """The document's sentences. With blocks, those of the blocks of `kinds` (`BuildConfig.evidence_blocks`):
    prose is split into sentences, a table or code block into its lines (a row, a line of code); a heading is
    never one. Without blocks, the sentences of the whole text. Offsets index `doc.text` either way."""
    if not doc.blocks:
        return split_sentences(doc.text, max_chars)
    spans: list[Span] = []
    for block in doc.blocks:
        if block.kind not in kinds or block.kind == "heading":
            continue
        text = doc.text[block.start : block.end]
        inner = split_sentences(text, max_chars) if block.kind in PROSE else _lines(text)
        spans += [Span(block.start + s.start, block.start + s.end) for s in inner]
    return spans


def _lines(text: str) -> list[Span]:
    spans, start = [], 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            offset = start + line.index(stripped)
            spans.append(Span(offset, offset + len(stripped)))
        start += len(line) + 1
    return spans


def _passages(word_counts: list[int], target: int) -> list[tuple[int, int]]:
    """Greedy windows of consecutive sentences of about `target` words, never splitting a sentence."""
    windows: list[tuple[int, int]] = []
    first, words = 0, 0
    for i, count in enumerate(word_counts):
        if words and words + count > target:
            windows.append((first, i))
            first, words = i, 0
        words += count
    if first < len(word_counts):
        windows.append((first, len(word_counts)))
    return windows


def segment_corpus(
    documents: list[Document], config: BuildConfig, on_documents: Callable[[int], None] | None = None
) -> Segmentation:
    """`on_documents(n)` is told every 1000 documents (and at the end) how many are done: a progress bar."""
    sent_doc: list[int] = []
    sent_idx: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    unit_doc: list[int] = []
    unit_first: list[int] = []
    unit_last: list[int] = []
    for d, doc in enumerate(documents):
        spans = document_sentences(doc, config.max_sentence_chars, config.evidence_blocks)
        base = len(sent_doc)
        for i, span in enumerate(spans):
            sent_doc.append(d)
            sent_idx.append(i)
            starts.append(span.start)
            ends.append(span.end)
        if config.unit == "sentence":
            windows = [(i, i + 1) for i in range(len(spans))]
        elif config.unit == "document":
            windows = [(0, len(spans))] if spans else []
        else:
            counts = [count_words(doc.text[s.start : s.end]) for s in spans]
            windows = _passages(counts, config.passage_tokens)
        for first, last in windows:
            unit_doc.append(d)
            unit_first.append(base + first)
            unit_last.append(base + last)
        if on_documents is not None and (d + 1) % 1000 == 0:
            on_documents(d + 1)
    if on_documents is not None:
        on_documents(len(documents))
    return Segmentation(
        sent_doc=np.asarray(sent_doc, dtype=np.int32),
        sent_idx=np.asarray(sent_idx, dtype=np.int32),
        sent_start=np.asarray(starts, dtype=np.int64),
        sent_end=np.asarray(ends, dtype=np.int64),
        unit_doc=np.asarray(unit_doc, dtype=np.int32),
        unit_first=np.asarray(unit_first, dtype=np.int64),
        unit_last=np.asarray(unit_last, dtype=np.int64),
    )


def join_title(title: str, body: str) -> str:
    if not title:
        return body
    return f"{title} {body}" if title[-1] in ".!?:。！？：" else f"{title}. {body}"


def unit_texts(documents: list[Document], seg: Segmentation, with_title: bool) -> list[str]:
    """The text each unit is embedded and BM25-indexed by (the stored evidence stays verbatim)."""
    return list(iter_unit_texts(documents, seg, with_title))


def iter_unit_texts(documents: list[Document], seg: Segmentation, with_title: bool) -> Iterator[str]:
    """`unit_texts` one at a time: BM25 reads each once, and at 1M units the list is ~0.2 GB."""
    for row in range(seg.n_units):
        body = unit_body(documents, seg, row)
        yield join_title(documents[seg.unit_doc[row]].title, body) if with_title else body


def unit_body(documents: Sequence[Document], seg: Segmentation, row: int) -> str:
    """Unit `row`'s text as its document has it (from its first sentence's start to its last's end)."""
    text = documents[seg.unit_doc[row]].text
    return text[seg.sent_start[seg.unit_first[row]] : seg.sent_end[seg.unit_last[row] - 1]]


# Units read to tell whether a model reads the corpus's language (models/vocabulary.py).
UNIT_SAMPLE = 1000


def sample_unit_texts(documents: Sequence[Document], seg: Segmentation, most: int = UNIT_SAMPLE) -> list[str]:
    """At most `most` units' texts, spread evenly over the corpus (the same ones every time)."""
    if seg.n_units == 0:
        return []
    rows = np.unique(np.linspace(0, seg.n_units - 1, min(seg.n_units, most)).astype(np.int64))
    return [unit_body(documents, seg, row) for row in rows.tolist()]
