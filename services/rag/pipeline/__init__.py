"""The pipeline: retrieval, fusion, reranking, evidence selection and the extractive answer."""

from .compose import numbers_in, unsupported_numbers
from .fuse import convex_fusion, minmax, rrf_fusion, top_k
from .pipeline import MAX_QUESTION_CHARS, Pipeline, Ranking
from .schemas import Answer, Evidence, Hit, SearchResult
from .select import mmr

__all__ = [
    "MAX_QUESTION_CHARS",
    "Answer",
    "Evidence",
    "Hit",
    "Pipeline",
    "Ranking",
    "SearchResult",
    "convex_fusion",
    "minmax",
    "mmr",
    "numbers_in",
    "rrf_fusion",
    "top_k",
    "unsupported_numbers",
]
