"""First stage: the question against BM25 and the dense index, inside the filters, fused into one ranking;
passage/document units re-scored by their best sentence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import RetrievalParams
from ..index import Bundle
from ..models import EmbeddingModel
from .fuse import convex_fusion, normalise, rrf_fusion, top_k
from .timings import Timings
from .units import UnitReader

__all__ = ["EMPTY", "Ranking", "Retriever"]

EMPTY = np.zeros(0, dtype=np.int64)
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
    def __init__(self, bundle: Bundle, embedder: EmbeddingModel, units: UnitReader) -> None:
        self.bundle = bundle
        self.embedder = embedder
        self.units = units

    def retrieve(self, question: str, p: RetrievalParams, allowed: np.ndarray | None, t: Timings) -> Ranking:
        bundle = self.bundle
        with t.stage("embed"):
            q = self.embedder.encode([question], kind="query")[0]
        with t.stage("bm25"):
            bm25_all = bundle.bm25.scores(question)
            lexical = p.alpha < 1.0 or p.fusion == "rrf"
            bm25_list = top_k(bm25_all, p.bm25_top_k, allowed) if lexical else EMPTY
        with t.stage("dense"):
            if p.alpha > 0.0 or p.fusion == "rrf":
                dense_list, dense_list_scores = bundle.dense.search(q, p.dense_top_k, allowed)
            else:
                dense_list, dense_list_scores = EMPTY, np.zeros(0, dtype=np.float32)
        with t.stage("fuse"):
            if p.fusion == "rrf":
                units, fused = rrf_fusion([bm25_list, dense_list], p.rrf_k)
            else:
                units, fused = convex_fusion(
                    bm25_list, bm25_all[bm25_list], dense_list, dense_list_scores, p.alpha
                )
            units, fused = self._sentence_signal(units, fused, q, p)
            dense = bundle.unit_vectors[units] @ q if len(units) else np.zeros(0, dtype=np.float32)
            return Ranking(units, fused, dense, bm25_all[units], None, q)

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
