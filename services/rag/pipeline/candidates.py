"""Where the first stage's candidates come from: the seam between this service and a retrieval engine.

A source answers one question with two ranked lists, lexical (BM25) and dense, inside the request's filters;
fusion, the sentence signal, rerank, evidence, MMR and abstention stay in the pipeline whatever the source.
`BundleCandidates` searches the loaded bundle; `rag.milvus.MilvusCandidates` asks a Milvus collection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..config import RetrievalParams
from ..index import Bundle
from .fuse import top_k
from .timings import Timings

__all__ = [
    "EMPTY",
    "NO_SCORES",
    "BundleCandidates",
    "CandidateSource",
    "Candidates",
    "lists_wanted",
    "score_lookup",
]

EMPTY = np.zeros(0, dtype=np.int64)
NO_SCORES = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class Candidates:
    """Both ranked lists (unit ids, best first, with their scores), and the BM25 and dense scores of any
    unit: the ranking reports them for units one list did not return too (BM25 0 where the source cannot
    say; dense NaN, computed from the unit's vector when reported)."""

    bm25_units: np.ndarray
    bm25_scores: np.ndarray
    dense_units: np.ndarray
    dense_scores: np.ndarray
    bm25_of: Callable[[np.ndarray], np.ndarray]
    dense_of: Callable[[np.ndarray], np.ndarray]


class CandidateSource(Protocol):
    name: str

    def unavailable(self) -> str | None:
        """Why this source cannot answer now (for `/ready`), or None."""
        ...

    def describe(self) -> dict[str, str]:
        """What `/info` says of it: the backend, and where it searches."""
        ...

    def candidates(
        self,
        question: str,
        vector: np.ndarray,
        p: RetrievalParams,
        filters: dict[str, Any] | None,
        t: Timings,
    ) -> Candidates: ...


def score_lookup(units: np.ndarray, scores: np.ndarray, default: float) -> Callable[[np.ndarray], np.ndarray]:
    """The score of any unit: from this list, `default` for a unit the list did not return."""
    found = dict(zip(units.tolist(), scores.tolist(), strict=True))

    def of(wanted: np.ndarray) -> np.ndarray:
        return np.array([found.get(u, default) for u in wanted.tolist()], dtype=np.float32)

    return of


def lists_wanted(p: RetrievalParams) -> tuple[bool, bool]:
    """(lexical, dense): a list the fusion gives no weight is not searched (RRF weighs both)."""
    return p.alpha < 1.0 or p.fusion == "rrf", p.alpha > 0.0 or p.fusion == "rrf"


class BundleCandidates:
    """BM25 and FAISS over the loaded bundle, with filters applied inside both searches."""

    name = "bundle"

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def unavailable(self) -> str | None:
        return None  # loaded and verified: nothing outside the pod to wait for

    def describe(self) -> dict[str, str]:
        return {"backend": self.name}

    def candidates(
        self,
        question: str,
        vector: np.ndarray,
        p: RetrievalParams,
        filters: dict[str, Any] | None,
        t: Timings,
    ) -> Candidates:
        lexical, dense = lists_wanted(p)
        with t.stage("filter"):
            allowed = self.bundle.unit_mask(filters)
        with t.stage("bm25"):
            bm25_all = self.bundle.bm25.scores(question)
            bm25_list = top_k(bm25_all, p.bm25_top_k, allowed) if lexical else EMPTY
        with t.stage("dense"):
            dense_list, dense_scores = (
                self.bundle.dense.search(vector, p.dense_top_k, allowed) if dense else (EMPTY, NO_SCORES)
            )
        return Candidates(
            bm25_list,
            bm25_all[bm25_list],
            dense_list,
            dense_scores,
            lambda u: bm25_all[u],
            lambda u: self.bundle.unit_vectors[u] @ vector,
        )
