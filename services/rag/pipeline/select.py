"""Evidence selection: maximal marginal relevance over candidate sentences."""

from __future__ import annotations

import numpy as np

__all__ = ["mmr"]


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float, min_ratio: float) -> list[int]:
    """Pick up to k indices by MMR: λ·relevance − (1−λ)·max similarity to what is already picked.

    Candidates whose relevance is below `min_ratio` × the best relevance are never picked, so the answer has
    1..k sentences: as many as the evidence supports.
    """
    if len(relevance) == 0:
        return []
    best = float(relevance.max())
    eligible = relevance >= best * min_ratio if best > 0 else relevance >= best
    picked: list[int] = []
    max_sim = np.full(len(relevance), -np.inf)
    for _ in range(min(k, int(eligible.sum()))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        objective = lam * relevance - (1.0 - lam) * penalty
        objective[~eligible] = -np.inf
        objective[picked] = -np.inf
        choice = int(np.argmax(objective))
        if not np.isfinite(objective[choice]):
            break
        picked.append(choice)
        max_sim = np.maximum(max_sim, vectors @ vectors[choice])
    return picked
