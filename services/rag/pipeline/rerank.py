"""Second stage: a cross-encoder reads the question with each unit of the ranking's head, and the head is
reordered by its score, alone or mixed with the first stage's."""

from __future__ import annotations

import numpy as np

from ..config import RerankText
from ..index import Bundle
from ..models import CrossEncoderModel
from .fuse import normalise
from .retrieve import Ranking
from .units import UnitReader

__all__ = ["CrossEncoderRerank"]

_PARTIAL_RERANK_WEIGHT = 0.4  # the cross-encoder's share when it reads part of a unit (docs/EVALUATION.md)


class CrossEncoderRerank:
    def __init__(self, bundle: Bundle, model: CrossEncoderModel, units: UnitReader) -> None:
        self.bundle = bundle
        self.model = model
        self.units = units

    def rerank(
        self, question: str, ranking: Ranking, top_n: int, weight: float | None, text: RerankText
    ) -> Ranking:
        """The head in the order of `weight` × cross-encoder + (1 − weight) × normalised fused score; the
        cross-encoder's own probabilities are kept in `rerank` (what confidence reads)."""
        head = ranking.units[:top_n]
        sentences = self.bundle.manifest.build.unit == "sentence"
        if weight is None:  # the cross-encoder reads all of a sentence unit, only part of a longer one
            weight = 1.0 if sentences else _PARTIAL_RERANK_WEIGHT
        if text == "best-sentence" and not sentences:
            texts = [self.units.best_sentences(u, ranking.query_vector) for u in head.tolist()]
        else:
            texts = [self.units.text(u, with_title=True) for u in head]
        scores = self.model.score(question, texts)
        n = len(head)
        mixed = scores if weight >= 1.0 else weight * scores + (1.0 - weight) * normalise(ranking.score[:n])
        return _reordered(ranking, scores, mixed)


def _reordered(ranking: Ranking, scores: np.ndarray, mixed: np.ndarray) -> Ranking:
    """Reranked units come first in the order of `mixed`, which becomes their score (0..1), so the head stays
    above the units that were not reranked."""
    n = len(mixed)
    order = np.argsort(-mixed, kind="stable")
    rerank = np.full(len(ranking.units), np.nan, dtype=np.float32)
    rerank[:n] = scores[order]

    def reorder(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values[:n][order], values[n:]])

    fused = reorder(ranking.score)
    fused[:n] = mixed[order]
    return Ranking(
        reorder(ranking.units),
        fused,
        reorder(ranking.dense),
        reorder(ranking.bm25),
        rerank,
        ranking.query_vector,
    )
