import numpy as np
import pytest

from rag.pipeline import convex_fusion, mmr, numbers_in, rrf_fusion, top_k, unsupported_numbers


def test_top_k_orders_by_score_then_index_and_respects_the_mask() -> None:
    scores = np.array([0.0, 3.0, 1.0, 3.0, 2.0])
    assert top_k(scores, 3).tolist() == [1, 3, 4]
    assert top_k(scores, 10, allowed=np.array([1, 0, 1, 0, 1], dtype=bool)).tolist() == [4, 2]


def test_convex_fusion_minmax_with_missing_as_zero() -> None:
    units, fused = convex_fusion(
        np.array([1, 2]), np.array([10.0, 5.0]), np.array([2, 3]), np.array([0.9, 0.5]), 0.4
    )
    got = dict(zip(units.tolist(), fused.tolist(), strict=True))
    assert got == pytest.approx({1: 0.6, 2: 0.4, 3: 0.0})
    assert units.tolist() == [1, 2, 3]
    only_dense, scores = convex_fusion(
        np.zeros(0, dtype=np.int64), np.zeros(0), np.array([4]), np.array([0.3]), 1.0
    )
    assert only_dense.tolist() == [4] and scores.tolist() == [1.0]


def test_rrf() -> None:
    units, scores = rrf_fusion([np.array([5, 6]), np.array([6, 7])], k=60)
    assert units.tolist() == [6, 5, 7]
    assert scores[0] == pytest.approx(1 / 62 + 1 / 61)


def test_mmr_prefers_diverse_evidence_and_stops_at_weak_relevance() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    relevance = np.array([1.0, 0.95, 0.8, 0.1])
    assert mmr(relevance, vectors, k=2, lam=0.5, min_ratio=0.5) == [0, 2]  # not the duplicate of 0
    assert mmr(relevance, vectors, k=2, lam=1.0, min_ratio=0.5) == [0, 1]  # pure relevance
    assert mmr(relevance, vectors, k=4, lam=0.7, min_ratio=0.5) == [0, 2, 1]  # 3 is too weak to qualify
    assert mmr(np.zeros(0), np.zeros((0, 2)), k=3, lam=0.7, min_ratio=0.5) == []


def test_numeric_safeguard() -> None:
    assert numbers_in("It rose 12% to 1,250.5 units in 2019, -3 overall") == {"12", "1250.5", "2019", "-3"}
    assert (
        unsupported_numbers(
            "Completed in 1889; 330 m tall.", ["It was completed in 1889.", "It is 330 m tall."]
        )
        == set()
    )
    assert unsupported_numbers("Completed in 1887.", ["It was completed in 1889."]) == {"1887"}
