import math

import pytest

from rag.eval import ndcg_at_k, recall_at_k, spans_overlap


def test_ndcg_matches_hand_computation() -> None:
    assert ndcg_at_k(["a", "b"], {"a": 1}, 10) == 1.0
    assert ndcg_at_k(["x", "a"], {"a": 1}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    )
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a": 1}, 10) == 0.0


def test_recall_and_span_overlap() -> None:
    assert recall_at_k(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, 2) == pytest.approx(1 / 3)
    assert spans_overlap((0, 10), (5, 30)) and not spans_overlap((0, 10), (8, 30))
    assert not spans_overlap((0, 0), (0, 5))


def test_scifact_evidence_spans_point_at_the_gold_sentences() -> None:
    from rag_testkit.samples import SHARED_DATA

    from rag.eval import load_beir

    data = load_beir(SHARED_DATA / "scifact", "test")
    assert len(data.queries) == 300 and sum(len(v) for v in data.qrels.values()) == 339
    assert len(data.evidence) == 188
    texts = {d.id: d.text for d in data.documents}
    # claim 3 (test) cites three sentences of document 14717500 as its evidence
    spans = data.evidence["3"]["14717500"]
    assert len(spans) == 3
    assert texts["14717500"][spans[0][0] : spans[0][1]].startswith(
        "We propose as an alternative explanation that"
    )
