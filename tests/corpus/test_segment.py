import itertools
import json
import random
import re

import pytest
from rag_testkit.samples import SHARED_DATA

from rag.config import BuildConfig
from rag.corpus import load_corpus, segment_corpus, split_sentences


def sentences(text: str) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text)]


def test_splits_on_terminal_punctuation_and_keeps_offsets_exact() -> None:
    text = "  Hello world. How are you?  I am fine!\nThanks. "
    spans = split_sentences(text)
    assert [text[s.start : s.end] for s in spans] == ["Hello world.", "How are you?", "I am fine!", "Thanks."]
    assert spans[0].start == 2


@pytest.mark.parametrize(
    "text",
    [
        "Results were significant, e.g. in mice. Other results were not.",
        "Smith et al. Reported this first. Fig. 2 shows it.",
        "The value was 3.5 mg. It rose to 4.2 mg later.",
        "Dr. Jones met J. K. Rowling yesterday. They talked.",
    ],
)
def test_abbreviations_and_decimals_do_not_split(text: str) -> None:
    got = sentences(text)
    assert all(not s.endswith(("e.g.", "Dr.", "Fig.", "J.", "K.")) for s in got[:-1])
    assert len(got) == 2 or "et al." in text


def test_blank_lines_and_list_items_are_hard_breaks() -> None:
    text = "# Title\n\nFirst paragraph without a full stop\n\n- item one\n- item two\nSecond line"
    assert sentences(text) == [
        "# Title",
        "First paragraph without a full stop",
        "- item one",
        "- item two\nSecond line",
    ]


def test_overlong_sentences_are_cut_at_whitespace() -> None:
    text = " ".join(["word"] * 1000)
    got = split_sentences(text, max_chars=100)
    assert all(s.end - s.start <= 100 for s in got)
    assert " ".join(text[s.start : s.end] for s in got) == text


def test_random_texts_cover_every_character_exactly_once() -> None:
    rng = random.Random(7)
    alphabet = ["Abc", "def", ".", "!", "?", " ", "\n", "\n\n", "e.g.", "3.5", "'", ")", "Z"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        spans = split_sentences(text, max_chars=40)
        covered = "".join(text[s.start : s.end] for s in spans)
        assert re.sub(r"\s", "", covered) == re.sub(r"\s", "", text)
        for a, b in itertools.pairwise(spans):
            assert a.end <= b.start
        for s in spans:
            piece = text[s.start : s.end]
            assert piece and piece == piece.strip() and len(piece) <= 40


def test_scifact_build_offsets_are_exact_for_every_sentence() -> None:
    """Every sentence of the SciFact build is its document's text at its offsets; no text is lost; and the
    segmentation agrees with SciFact's own sentence boundaries for the large majority of sentences."""
    corpus = SHARED_DATA / "scifact" / "corpus.jsonl"
    documents, _ = load_corpus(corpus)
    seg = segment_corpus(documents, BuildConfig(unit="sentence"))
    assert seg.n_sentences > 40_000
    by_doc: dict[int, list[str]] = {}
    for d, start, end in zip(
        seg.sent_doc.tolist(), seg.sent_start.tolist(), seg.sent_end.tolist(), strict=True
    ):
        piece = documents[d].text[start:end]
        assert piece and piece == piece.strip()
        by_doc.setdefault(d, []).append(piece)
    for d, doc in enumerate(documents):
        assert re.sub(r"\s", "", "".join(by_doc.get(d, []))) == re.sub(r"\s", "", doc.text)
    gold = {}
    with (SHARED_DATA / "scifact" / "derived" / "corpus_sentences.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            gold[record["_id"]] = record["sentences"]
    agree = total = 0
    for d, doc in enumerate(documents):
        ours = set(by_doc.get(d, []))
        total += len(gold[doc.id])
        agree += sum(s in ours for s in gold[doc.id])
    assert agree / total > 0.94
