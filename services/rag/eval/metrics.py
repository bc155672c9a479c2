"""Retrieval and evidence metrics (BEIR conventions: nDCG with graded gains, log2 discount)."""

from __future__ import annotations

import math

__all__ = ["ndcg_at_k", "recall_at_k", "spans_overlap"]


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def spans_overlap(a: tuple[int, int], b: tuple[int, int], min_share: float = 0.5) -> bool:
    """Two spans overlap by at least `min_share` of the shorter one (segmentations differ slightly)."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    shorter = min(a[1] - a[0], b[1] - b[0])
    return shorter > 0 and inter >= min_share * shorter
