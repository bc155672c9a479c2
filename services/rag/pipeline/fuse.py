"""Fusion of lexical and dense rankings: pure functions over arrays."""

from __future__ import annotations

import numpy as np

__all__ = ["convex_fusion", "minmax", "normalise", "rrf_fusion", "top_k"]


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k highest positive scores (allowed ones only), best first; ties broken by index."""
    candidates = np.flatnonzero(scores > 0) if allowed is None else np.flatnonzero((scores > 0) & allowed)
    if len(candidates) > k:
        part = np.argpartition(-scores[candidates], k - 1)[:k]
        candidates = candidates[part]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order]


def minmax(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    if span <= 1e-12:
        return np.ones_like(values, dtype=np.float64) * (1.0 if len(values) else 0.0)
    return np.clip((values - lo) / span, 0.0, 1.0)


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max over the values themselves (fusion's scaling, with their own range)."""
    values = np.asarray(values, dtype=np.float64)
    return values if not len(values) else minmax(values, float(values.min()), float(values.max()))


def convex_fusion(
    bm25_list: np.ndarray,
    bm25_scores: np.ndarray,
    dense_list: np.ndarray,
    dense_scores: np.ndarray,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Min-max-normalised convex combination α·dense + (1-α)·bm25 over the union of both top lists.

    Each list is normalised by its own min and max; a unit missing from one list scores 0 on that side. (Its
    exact score there would be at most that list's minimum, so min-max would map it to 0 all the same.)
    """
    union = np.union1d(bm25_list, dense_list)
    b_norm = np.zeros(len(union))
    d_norm = np.zeros(len(union))
    if len(bm25_list):
        b_norm[np.searchsorted(union, bm25_list)] = minmax(bm25_scores, bm25_scores.min(), bm25_scores.max())
    if len(dense_list):
        d_norm[np.searchsorted(union, dense_list)] = minmax(
            dense_scores, dense_scores.min(), dense_scores.max()
        )
    fused = alpha * d_norm + (1.0 - alpha) * b_norm
    order = np.lexsort((union, -fused))
    return union[order].astype(np.int64), fused[order]


def rrf_fusion(lists: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion: Σ 1/(k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, unit in enumerate(ranked.tolist(), start=1):
            scores[unit] = scores.get(unit, 0.0) + 1.0 / (k + rank)
    if not scores:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    units = np.fromiter(scores, dtype=np.int64)
    values = np.fromiter(scores.values(), dtype=np.float64)
    order = np.lexsort((units, -values))
    return units[order], values[order]
