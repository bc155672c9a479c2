"""Second stage: a cross-encoder reads the question with each unit of the ranking's head, and the head is
reordered by its score, alone or mixed with the first stage's."""

from __future__ import annotations

import numpy as np

from ..config import RetrievalParams
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

    def rerank(self, question: str, ranking: Ranking, params: RetrievalParams) -> Ranking:
        """The head in the order of `weight` × cross-encoder + (1 − weight) × normalised fused score; the
        cross-encoder's own probabilities are kept in `rerank` (what confidence reads)."""
        texts = self.texts(ranking, params)
        weight = params.rerank_weight
        if weight is None:  # the cross-encoder reads all of a sentence unit, only part of a longer one
            weight = 1.0 if self._sentence_units else _PARTIAL_RERANK_WEIGHT
        scores = self.model.score(question, texts)
        n = len(texts)
        mixed = scores if weight >= 1.0 else weight * scores + (1.0 - weight) * normalise(ranking.score[:n])
        return _reordered(ranking, scores, mixed)

    def texts(self, ranking: Ranking, params: RetrievalParams) -> list[str]:
        """What the cross-encoder reads of each unit in the ranking's head."""
        head = ranking.units[: params.rerank_top_n].tolist()
        title = params.rerank_title
        if params.rerank_text == "best-sentence" and not self._sentence_units:
            return [self.units.best_sentences(u, ranking.query_vector, with_title=title) for u in head]
        return [self.units.text(u, with_title=title) for u in head]

    @property
    def _sentence_units(self) -> bool:
        return self.bundle.manifest.build.unit == "sentence"


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
