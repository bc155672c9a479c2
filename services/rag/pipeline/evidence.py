"""Third stage: the sentences that compete to be evidence, and the 1..k picked among them by maximal marginal
relevance (relevant, and not saying again what an earlier pick said)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import RetrievalParams
from ..index import Bundle
from .fuse import normalise
from .retrieve import EMPTY, Ranking
from .units import UnitReader

__all__ = ["EvidenceSelector", "Selection", "mmr"]

_EVIDENCE_UNITS = 5  # passage/document units whose sentences compete for evidence
_EVIDENCE_SENTENCES = 20  # sentence units considered for evidence


@dataclass(frozen=True)
class Selection:
    rows: np.ndarray  # candidate sentence rows, best first
    relevance: np.ndarray  # their relevance, 0..1
    vectors: np.ndarray  # their sentence vectors
    picked: list[int]  # indices into rows: the evidence, in answer order


class EvidenceSelector:
    def __init__(self, bundle: Bundle, units: UnitReader) -> None:
        self.bundle = bundle
        self.units = units

    def select(self, ranking: Ranking, p: RetrievalParams) -> Selection:
        rows, relevance = self.candidates(ranking, p)
        vectors = self.units.sentence_vectors(rows) if len(rows) else np.zeros((0, 1))
        return Selection(
            rows,
            relevance,
            vectors,
            mmr(relevance, vectors, p.evidence_k, p.mmr_lambda, p.evidence_min_ratio),
        )

    def candidates(self, ranking: Ranking, p: RetrievalParams) -> tuple[np.ndarray, np.ndarray]:
        """(sentence rows, relevance 0..1), best first: the sentences competing to be evidence."""
        seg = self.bundle.seg
        if not len(ranking.units):
            return EMPTY, np.zeros(0)
        if self.bundle.manifest.build.unit == "sentence":
            n = min(_EVIDENCE_SENTENCES, len(ranking.units))
            return seg.unit_first[ranking.units[:n]], normalise(ranking.score[:n])
        n = min(_EVIDENCE_UNITS, len(ranking.units))
        unit_rel = normalise(ranking.score[:n])
        rows_list: list[int] = []
        parent: list[int] = []
        for i, unit in enumerate(ranking.units[:n].tolist()):
            span = range(int(seg.unit_first[unit]), int(seg.unit_last[unit]))
            rows_list.extend(span)
            parent.extend([i] * len(span))
        rows = np.asarray(rows_list, dtype=np.int64)
        sims = self.units.sentence_vectors(rows) @ ranking.query_vector
        relevance = p.unit_weight * unit_rel[np.asarray(parent)] + (1.0 - p.unit_weight) * normalise(sims)
        order = np.argsort(-relevance, kind="stable")
        return rows[order], relevance[order]


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
