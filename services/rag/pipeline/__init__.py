"""The pipeline: retrieval, fusion, reranking, evidence selection and the extractive answer."""

from .compose import numbers_in, unsupported_numbers
from .evidence import mmr
from .fuse import convex_fusion, minmax, normalise, rrf_fusion, top_k
from .pipeline import MAX_QUESTION_CHARS, Pipeline, retrieval
from .retrieve import Ranking
from .schemas import Answer, Evidence, Hit, SearchResult
from .timings import Timings

__all__ = [
    "MAX_QUESTION_CHARS",
    "Answer",
    "Evidence",
    "Hit",
    "Pipeline",
    "Ranking",
    "SearchResult",
    "Timings",
    "convex_fusion",
    "minmax",
    "mmr",
    "normalise",
    "numbers_in",
    "retrieval",
    "rrf_fusion",
    "top_k",
    "unsupported_numbers",
]
