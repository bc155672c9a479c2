"""First stage: the question's lexical and dense candidates (candidates.py: from the bundle or a retrieval
engine), fused into one ranking; passage/document units re-scored by their best sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import RetrievalParams
from ..index import Bundle
from ..models import EmbeddingModel
from .candidates import EMPTY, BundleCandidates, CandidateSource
from .fuse import convex_fusion, normalise, rrf_fusion
from .timings import Timings
from .units import UnitReader

__all__ = ["EMPTY", "Ranking", "Retriever"]
_SENTENCE_SIGNAL_HEAD = 100  # passage/document units re-scored by their best sentence


@dataclass
class Ranking:
    """Ranked units with every score that went into the order (arrays aligned with `units`)."""

    units: np.ndarray
    score: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    rerank: np.ndarray | None
    query_vector: np.ndarray


class Retriever:
    def __init__(
        self,
        bundle: Bundle,
        embedder: EmbeddingModel,
        units: UnitReader,
        source: CandidateSource | None = None,
    ) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.units = units
        self.source = source or BundleCandidates(bundle)

    def retrieve(
        self, question: str, p: RetrievalParams, filters: dict[str, Any] | None, t: Timings
    ) -> Ranking:
        with t.stage("embed"):
            q = self.embedder.encode([question], kind="query")[0]
        found = self.source.candidates(question, q, p, filters, t)
        with t.stage("fuse"):
            if p.fusion == "rrf":
                units, fused = rrf_fusion([found.bm25_units, found.dense_units], p.rrf_k)
            else:
                units, fused = convex_fusion(
                    found.bm25_units, found.bm25_scores, found.dense_units, found.dense_scores, p.alpha
                )
            units, fused = self._sentence_signal(units, fused, q, p)
            dense = found.dense_of(units) if len(units) else np.zeros(0, dtype=np.float32)
            return Ranking(units, fused, dense, found.bm25_of(units), None, q)

    def _sentence_signal(
        self, units: np.ndarray, fused: np.ndarray, q: np.ndarray, p: RetrievalParams
    ) -> tuple[np.ndarray, np.ndarray]:
        """Passage/document units: the head's score mixed with its best sentence's similarity."""
        if p.sentence_weight <= 0 or self.bundle.manifest.build.unit == "sentence" or not len(units):
            return units, fused
        # Only the head is re-scored: it bounds the per-query cost and covers what is returned.
        head = min(_SENTENCE_SIGNAL_HEAD, len(units))
        best = normalise(self.units.best_sentence_similarity(units[:head], q))
        mixed = (1.0 - p.sentence_weight) * fused[:head] + p.sentence_weight * best
        order = np.lexsort((units[:head], -mixed))
        return (
            np.concatenate([units[:head][order], units[head:]]),
            np.concatenate([mixed[order], (1.0 - p.sentence_weight) * fused[head:]]),
        )
