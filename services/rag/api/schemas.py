"""The HTTP edge: request bodies (strict — unknown fields are rejected) and response shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from ..config import Fusion
from ..generation import GenerationInfo
from ..pipeline import Answer, SearchResult
from ..pipeline.pipeline import MAX_QUESTION_CHARS

__all__ = [
    "AnswerRequest",
    "AnswerResponse",
    "CacheInfo",
    "CacheStats",
    "EmbeddingCacheBody",
    "ErrorBody",
    "ReadyBody",
    "SearchRequest",
    "SearchResponse",
]

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool
Values = Scalar | Annotated[list[Scalar], Field(min_length=1, max_length=100)]


class NotFilter(BaseModel):
    """`{"not": value or [values]}`: exclude documents whose field has one of the values."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    not_: Values = Field(alias="not")


FilterValue = Values | NotFilter

_QUESTION = Field(
    min_length=1,
    max_length=MAX_QUESTION_CHARS,
    description=f"the question; 1–{MAX_QUESTION_CHARS} characters, not only whitespace",
)
_FILTERS = Field(
    default=None,
    max_length=16,
    description="document metadata filters, ANDed: {field: value}, {field: [values]} (any of), "
    '{field: {"not": value or [values]}}',
)


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = _QUESTION
    filters: dict[str, FilterValue] | None = _FILTERS
    rerank: bool | None = Field(None, description="cross-encoder reranking on/off (default: server setting)")
    fusion: Fusion | None = Field(None, description="how BM25 and dense rankings combine")
    alpha: float | None = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False, description="dense weight (convex)"
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        return value

    def pipeline_filters(self) -> dict[str, Any] | None:
        if not self.filters:
            return None
        return {
            name: {"not": cond.not_} if isinstance(cond, NotFilter) else cond
            for name, cond in self.filters.items()
        }

    def overrides(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in ("rerank", "fusion", "alpha")
            if getattr(self, name) is not None
        }


class AnswerRequest(_Query):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "When was the Eiffel Tower completed?"},
                {
                    "question": "What do roots absorb?",
                    "evidence_k": 2,
                    "filters": {"tags": "biology"},
                    "rerank": False,
                },
            ]
        },
    )

    # `top_k` was this field's first name; it is still accepted, so clients written against it keep working.
    evidence_k: int | None = Field(
        None,
        ge=1,
        le=20,
        validation_alias=AliasChoices("evidence_k", "top_k"),
        description="at most this many evidence sentences (`top_k`, its older name, is accepted too)",
    )
    mode: Literal["extractive", "generative"] | None = Field(
        None,
        description="generative: an LLM answer citing the evidence, checked, with the extractive answer as "
        "fallback (needs RAG_GENERATION_BASE_URL); default: RAG_GENERATION_MODE",
    )
    stream: StrictBool = Field(
        False, description="generative only: text/event-stream of evidence, answer deltas, then the result"
    )

    def overrides(self) -> dict[str, Any]:
        out = super().overrides()
        if self.evidence_k is not None:
            out["evidence_k"] = self.evidence_k
        return out


class SearchRequest(_Query):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "capital of France", "limit": 5}]},
    )

    limit: int = Field(10, ge=1, le=100, description="ranked units to return")


class CacheInfo(BaseModel):
    hit: bool
    age_seconds: float | None = Field(None, description="how old the cached answer is (hits only)")


class AnswerResponse(Answer):
    cache: CacheInfo
    request_id: str
    generation: GenerationInfo | None = Field(
        None, description="only when the LLM layer ran (generative mode, expansion or self-query)"
    )


class SearchResponse(SearchResult):
    request_id: str


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, for a person")
    error_type: str = Field(description="stable machine-readable kind, e.g. validation_error, overloaded")
    request_id: str | None = None
    detail: list[dict[str, Any]] | None = Field(None, description="validation errors: location and message")


class ReadyBody(BaseModel):
    status: Literal["ready", "starting", "draining", "saturated", "unavailable", "failed"]
    reason: str | None = None
    corpus_id: str | None = None


class EmbeddingCacheBody(BaseModel):
    """The embedding cache file named by RAG_EMBEDDING_CACHE (shared by builds on this node)."""

    path: str
    entries: int = 0
    bytes: int = 0
    max_entries: int
    max_bytes: int
    oldest: str | None = Field(None, description="when the oldest vector was written (ISO 8601, UTC)")
    newest: str | None = None
    hits: int = 0
    misses: int = 0
    hit_rate: float | None = None
    evictions: int = 0
    error: str | None = Field(None, description="why the file could not be read (missing, not a cache)")


class CacheStats(BaseModel):
    enabled: bool
    size: int
    capacity: int
    ttl_seconds: float
    hits: int
    misses: int
    evictions: int
    corpus_id: str | None
    bytes: int = Field(0, description="the cached answers' JSON bytes")
    max_bytes: int = 0
    oldest_age_seconds: float | None = Field(None, description="since the oldest entry was stored")
    newest_age_seconds: float | None = None
    hit_rate: float | None = Field(None, description="hits / (hits + misses) since this worker started")
    expirations: int = Field(0, description="entries dropped past the TTL")
    embedding: EmbeddingCacheBody | None = Field(None, description="when RAG_EMBEDDING_CACHE is set")
