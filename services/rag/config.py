"""All configuration in one object, read from the environment (`RAG_*`).

Settings are read once at the edge (CLI, API factory, evaluator) and passed down; nothing deeper in the
package reads the environment. Two views are derived from them: `BuildConfig` (what shapes a bundle, recorded
in its manifest) and `RetrievalParams` (per-query knobs, overridable per request).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_EMBEDDING_MODEL", "DEFAULT_RERANKER_MODEL", "BuildConfig", "RetrievalParams", "Settings"]

DEFAULT_EMBEDDING_MODEL = "intfloat/e5-base-v2"
DEFAULT_RERANKER_MODEL = "BAAI/bge-reranker-base"

Unit = Literal["sentence", "passage", "document"]
Fusion = Literal["convex", "rrf"]


class BuildConfig(BaseModel):
    """Everything that changes the bytes of a bundle besides the corpus and the embedding model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Unit = "sentence"
    passage_tokens: int = Field(200, ge=16, le=2048, description="target words per passage unit")
    unit_title: bool = Field(True, description="embed units as 'title. text' (context for short units)")
    dense_index: Literal["flat", "hnsw"] = "flat"
    hnsw_m: int = Field(32, ge=4, le=128)
    hnsw_ef_construction: int = Field(200, ge=16, le=2048)
    stemmer: Literal["english", "none"] = "english"
    max_sentence_chars: int = Field(2000, ge=80, description="longer sentences are split at whitespace")
    max_document_chars: int = Field(
        10_000_000, ge=1, description="larger documents are skipped with a warning (recorded in the manifest)"
    )
    batch_size: int = Field(64, ge=1, le=4096)


class RetrievalParams(BaseModel):
    """Per-query knobs; defaults come from Settings, a request may override them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bm25_top_k: int = Field(100, ge=1, le=1000)
    dense_top_k: int = Field(100, ge=1, le=1000)
    fusion: Fusion = "convex"
    alpha: float = Field(0.4, ge=0.0, le=1.0, description="dense weight in convex fusion")
    rrf_k: int = Field(60, ge=1)
    fusion_fill: Literal["exact", "zero"] = Field(
        "exact", description="score a unit missing from one top list by its exact score there, or by 0"
    )
    rerank: bool = True
    rerank_top_n: int = Field(20, ge=1, le=200)
    evidence_k: int = Field(3, ge=1, le=20, description="at most this many evidence sentences")
    evidence_min_ratio: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="an evidence sentence must reach this share of the best one's relevance",
    )
    mmr_lambda: float = Field(0.7, ge=0.0, le=1.0)
    unit_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of the unit's score in a sentence's score (passage/document units)",
    )
    abstain_threshold: float = Field(0.3, description="abstain when the confidence is below this")
    abstain_rerank_threshold: float = Field(
        0.1, description="the same, when the confidence is a reranker score"
    )


class Settings(BaseSettings):
    """The service's configuration. Every field is `RAG_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", frozen=True)

    # models
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_revision: str | None = None
    reranker_model: str | None = DEFAULT_RERANKER_MODEL
    reranker_revision: str | None = None
    backend: Literal["torch"] = "torch"
    query_prefix: str | None = Field(None, description="overrides the prefix known for the model")
    passage_prefix: str | None = None
    max_seq_length: int | None = Field(None, ge=8, le=8192)
    threads: int = Field(0, ge=0, description="intra-op threads; 0 = the cores this process may use")
    models_dir: str | None = Field(None, description="where downloaded models are cached")

    # build (see BuildConfig)
    unit: Unit = "sentence"
    passage_tokens: int = 200
    unit_title: bool = True
    dense_index: Literal["flat", "hnsw"] = "flat"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = Field(64, ge=1)
    stemmer: Literal["english", "none"] = "english"
    max_sentence_chars: int = 2000
    max_document_chars: int = 10_000_000
    batch_size: int = 64

    # lexical scoring, applied when a bundle is loaded (no rebuild needed to change them)
    bm25_k1: float = Field(1.2, gt=0.0)
    bm25_b: float = Field(0.75, ge=0.0, le=1.0)
    bm25_title_weight: float = Field(1.0, ge=0.0, description="title term counts are multiplied by this")

    # query defaults (see RetrievalParams)
    bm25_top_k: int = 100
    dense_top_k: int = 100
    fusion: Fusion = "convex"
    alpha: float = 0.4
    rrf_k: int = 60
    fusion_fill: Literal["exact", "zero"] = "exact"
    rerank: bool = True
    rerank_top_n: int = 20
    evidence_k: int = 3
    evidence_min_ratio: float = 0.5
    mmr_lambda: float = 0.7
    unit_weight: float = 0.5
    sentence_weight: float = 0.0
    abstain_threshold: float = 0.3
    abstain_rerank_threshold: float = 0.1

    @field_validator("reranker_model", "embedding_revision", "reranker_revision", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `RAG_RERANKER_MODEL=` (empty) is how a deployment turns the reranker off.
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "off") else value

    def build_config(self) -> BuildConfig:
        return BuildConfig(**{name: getattr(self, name) for name in BuildConfig.model_fields})

    def retrieval_params(self) -> RetrievalParams:
        return RetrievalParams(**{name: getattr(self, name) for name in RetrievalParams.model_fields})

    def effective_threads(self) -> int:
        if self.threads:
            return self.threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - non-Linux
            return max(1, os.cpu_count() or 1)
