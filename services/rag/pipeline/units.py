"""What the stages read of a bundle: a unit's text, its sentences closest to a question, an evidence span."""

from __future__ import annotations

import numpy as np

from ..corpus.units import join_title, unit_body
from ..index import Bundle
from .schemas import Evidence

__all__ = ["UnitReader"]


class UnitReader:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def text(self, unit: int, with_title: bool = False) -> str:
        body = unit_body(self.bundle.documents, self.bundle.seg, unit)
        title = self.bundle.documents.titles[self.bundle.seg.unit_doc[unit]]
        return join_title(title, body) if with_title else body

    def span(self, unit: int) -> tuple[int, int]:
        """The unit's characters in its document: from its first sentence's start to its last one's end."""
        seg = self.bundle.seg
        return int(seg.sent_start[seg.unit_first[unit]]), int(seg.sent_end[seg.unit_last[unit] - 1])

    def sentence_vectors(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.bundle.sentence_vectors[rows])

    def best_sentence_similarity(self, units: np.ndarray, q: np.ndarray) -> np.ndarray:
        """For each unit, the highest cosine between the question and one of its sentences (MaxP)."""
        seg = self.bundle.seg
        first, last = seg.unit_first[units], seg.unit_last[units]
        lengths = last - first
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        rows = np.repeat(first - starts, lengths) + np.arange(lengths.sum())
        return np.maximum.reduceat(self.sentence_vectors(rows) @ q, starts)

    def best_sentences(self, unit: int, q: np.ndarray, k: int = 1, with_title: bool = True) -> str:
        """The unit's title (unless `with_title` is false) and its `k` sentences closest to the question, in
        document order: on SciFact, a cross-encoder reading the best one ranked documents better than reading
        their first 128 tokens, in less time (docs/EVALUATION.md; `make eval-rerank` tries other k)."""
        seg = self.bundle.seg
        rows = np.arange(int(seg.unit_first[unit]), int(seg.unit_last[unit]))
        sims = self.sentence_vectors(rows) @ q
        picked = np.sort(rows[np.argsort(-sims, kind="stable")[:k]])
        doc = self.bundle.documents[seg.unit_doc[unit]]
        body = " ".join(doc.text[seg.sent_start[r] : seg.sent_end[r]] for r in picked)
        return join_title(doc.title, body) if with_title else body

    def evidence(self, row: int, score: float) -> Evidence:
        """Sentence `row` as cited evidence: its exact span in its document."""
        seg = self.bundle.seg
        doc = self.bundle.documents[seg.sent_doc[row]]
        start, end = int(seg.sent_start[row]), int(seg.sent_end[row])
        return Evidence(
            doc_id=doc.id,
            title=doc.title,
            sentence_id=f"{doc.id}#{int(seg.sent_idx[row])}",
            text=doc.text[start:end],
            char_start=start,
            char_end=end,
            score=round(score, 6),
            page=doc.page_at(start),
            section=doc.section_at(start),
        )
