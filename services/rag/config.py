"""All configuration in one object, read from the environment (`RAG_*`).

Settings are read once at the edge (CLI, API factory, evaluator) and passed down; nothing deeper in the
package reads the environment. Two views are derived from them: `BuildConfig` (what shapes a bundle, recorded
in its manifest) and `RetrievalParams` (per-query knobs, overridable per request).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError
from .redact import mask_url, remember, url_credentials

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_RERANKER_MODEL",
    "SETTINGS_GROUPS",
    "Bm25Params",
    "BuildConfig",
    "DenseKind",
    "DenseParams",
    "RetrievalParams",
    "Settings",
    "available_cpus",
    "child_environment",
    "load_settings",
]

DEFAULT_EMBEDDING_MODEL = "intfloat/e5-base-v2"
DEFAULT_RERANKER_MODEL = "BAAI/bge-reranker-base"

Unit = Literal["sentence", "passage", "document"]
Fusion = Literal["convex", "rrf"]
RerankText = Literal["best-sentence", "unit"]
EvidenceBlock = Literal["paragraph", "list_item", "table", "code"]
# flat and hnsw hold float32 vectors; hnsw-sq8 searches 8-bit codes; ivf-pq searches product-quantised codes
# and re-scores its head with 8-bit codes, memory-mapped (docs/BENCHMARKS.md, "Scale").
DenseKind = Literal["flat", "hnsw", "hnsw-sq8", "ivf-pq"]


class BuildConfig(BaseModel):
    """Everything that changes the bytes of a bundle besides the corpus and the embedding model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Unit = Field(
        "sentence",
        description="retrieval unit: `sentence`, `passage` or `document`; evidence is always sentences",
    )
    passage_tokens: int = Field(200, ge=16, le=2048, description="target words per passage unit")
    unit_title: bool = Field(True, description="embed units as 'title. text' (context for short units)")
    dense_index: DenseKind = Field(
        "flat",
        description="`flat` (exact), `hnsw` (graph), or compressed for large corpora: `hnsw-sq8` (graph over "
        "8-bit codes) or `ivf-pq` (inverted lists of product-quantised codes, re-scored with 8-bit codes)",
    )
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW links per vector")
    hnsw_ef_construction: int = Field(200, ge=16, le=2048, description="HNSW build breadth")
    stemmer: Literal["english", "none"] = Field("english", description="BM25's stemmer")
    max_sentence_chars: int = Field(2000, ge=80, description="longer sentences are split at whitespace")
    max_document_chars: int = Field(
        10_000_000, ge=1, description="larger documents are skipped with a warning (recorded in the manifest)"
    )
    max_file_bytes: int = Field(
        200 * 1024**2,
        ge=1,
        description="larger corpus files are skipped with a warning (recorded in the manifest); not `.jsonl` "
        "files, whose records are held to `RAG_MAX_DOCUMENT_CHARS`",
    )
    max_pages: int = Field(
        2000, ge=1, description="PDFs with more pages are skipped with a warning (recorded in the manifest)"
    )
    batch_size: int = Field(
        64, ge=1, le=4096, description="texts per embedding batch (builds without a cache; with one: 1)"
    )
    evidence_blocks: tuple[EvidenceBlock, ...] = Field(
        ("paragraph", "list_item"),
        min_length=1,
        description="blocks of structured files (Markdown, HTML, PDF, DOCX) cut into evidence sentences "
        "(comma-separated); add `table` (each row one sentence) or `code` (each line); headings never are",
    )


class RetrievalParams(BaseModel):
    """Per-query knobs; defaults come from Settings, a request may override them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bm25_top_k: int = Field(100, ge=1, le=1000, description="units BM25 hands to fusion")
    dense_top_k: int = Field(100, ge=1, le=1000, description="units dense search hands to fusion")
    fusion: Fusion = Field("convex", description="min-max `convex` fusion with dense weight alpha, or `rrf`")
    alpha: float = Field(0.4, ge=0.0, le=1.0, description="dense weight in convex fusion")
    rrf_k: int = Field(60, ge=1, description="RRF's rank constant (`fusion=rrf`)")
    rerank: bool = Field(True, description="rerank with the cross-encoder when one is configured")
    # 10, not 20: half the cost for the same evidence (SQuAD tuning half top-1 0.852 vs 0.857; SciFact documents
    # 0.7423 vs 0.7432), docs/EVALUATION.md.
    rerank_top_n: int = Field(10, ge=1, le=200, description="units the cross-encoder scores")
    rerank_text: RerankText = Field(
        "best-sentence",
        description="what the cross-encoder reads of a passage/document unit: its title and the sentence most "
        "similar to the question (the evidence the answer would quote), or the whole unit",
    )
    # Measured with the real ms-marco-MiniLM-L-12-v2 (docs/EVALUATION.md): over sentence units the
    # cross-encoder alone lifts SQuAD evidence top-1 from 0.805 to 0.880 and SciFact a little; reading only the
    # best sentence of a longer unit, alone it loses SciFact nDCG@10 (0.697 vs 0.741), mixed at 0.4 it does not.
    rerank_weight: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="share of the cross-encoder in a reranked unit's score; the rest is the first stage's "
        "fused score, min-max normalised over the reranked head; unset: 1 (the cross-encoder alone) for "
        "sentence units, 0.4 for passage and document units",
    )
    rerank_title: bool = Field(
        True,
        description="whether the cross-encoder reads a unit's title before its text (SQuAD evidence top-1 0.852 "
        "with, 0.825 without, on the tuning half); false saves the title's tokens on every pair, a fifth of "
        "the rerank on SciFact's long titles (docs/EVALUATION.md)",
    )
    evidence_k: int = Field(3, ge=1, le=20, description="at most this many evidence sentences")
    evidence_min_ratio: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="an evidence sentence must reach this share of the best one's relevance",
    )
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="MMR's relevance share when picking evidence (the rest: novelty)"
    )
    unit_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of the unit's score in a sentence's score (passage/document units)",
    )
    sentence_weight: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="passage/document units: share of the best sentence's similarity in the unit's score",
    )
    abstain_threshold: float = Field(
        0.475,
        description="abstain when the best evidence's cosine is below this; calibrated on SQuAD for "
        "all-MiniLM-L6-v2 (docs/EVALUATION.md) — recalibrate with `rag eval` for another model",
    )
    abstain_rerank_threshold: float = Field(
        0.1, description="the same, when the confidence is a reranker probability (not yet calibrated)"
    )


class Bm25Params(BaseModel):
    """BM25 scoring, applied when a bundle is loaded (no rebuild needed to change it).

    Defaults chosen on SciFact's train queries (docs/EVALUATION.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    k1: float = Field(1.2, gt=0.0, description="BM25 term-frequency saturation")
    b: float = Field(0.9, ge=0.0, le=1.0, description="BM25 length normalisation")
    title_weight: float = Field(2.0, ge=0.0, description="title term counts are multiplied by this")


class DenseParams(BaseModel):
    """How a dense index is searched, applied when a bundle is loaded (no rebuild needed to change it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ef_search: int = Field(64, ge=1, description="HNSW search breadth (`hnsw` and `hnsw-sq8` bundles)")
    nprobe: int = Field(32, ge=1, description="inverted lists searched per query (`ivf-pq` bundles)")
    # 10: at 5M units (docs/BENCHMARKS.md, "Scale") ivf-pq's recall@10 is 0.925 re-scoring 4 per unit wanted,
    # 0.977 re-scoring 10, for 3.1 ms p50.
    rescore: int = Field(
        10,
        ge=1,
        le=64,
        description="`ivf-pq`: candidates per wanted unit re-scored with the 8-bit codes",
    )


def _mirror(view: type[BaseModel], name: str, description: str | None = None) -> Any:
    """A setting that is the default of a view's field: the same default and description, written once (its
    range is checked through the view, `Settings._check_views`)."""
    field = view.model_fields[name]
    return Field(field.default, description=description or field.description)


class ModelSettings(BaseModel):
    """Models: which embedder and cross-encoder, from where, on which backend."""

    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="a Hugging Face hub id, a local folder (`rag models import`/`export` for onnx) or "
        "`pkg:<module>`",
    )
    embedding_revision: str | None = Field(None, description="the hub revision (commit or tag) to pin")
    reranker_model: str | None = Field(
        DEFAULT_RERANKER_MODEL,
        description="the cross-encoder, named as the embedder is; empty = no reranking",
    )
    reranker_revision: str | None = Field(None, description="the reranker's hub revision to pin")
    backend: Literal["torch", "onnx"] = Field(
        "torch",
        description="`onnx` serves a folder made by `rag models export` or `rag models import`, without torch",
    )
    query_prefix: str | None = Field(None, description="overrides the prefix known for the model")
    passage_prefix: str | None = Field(None, description="overrides the passage prefix known for the model")
    max_seq_length: int | None = Field(
        None, ge=8, le=8192, description="tokens per text the models read; default: the model's own"
    )
    threads: int = Field(0, ge=0, description="intra-op threads; 0 = the cores this process may use")
    reranker_max_tokens: int | None = Field(
        None,
        ge=8,
        le=8192,
        description="the cross-encoder's (question, unit) pairs are cut to this many tokens (default: "
        "RAG_MAX_SEQ_LENGTH, else the model's)",
    )
    max_batch_tokens: int = Field(
        1024,
        ge=64,
        description="onnx backend: padded tokens per model batch; ONNX Runtime keeps the largest batch's "
        "activations, so this bounds a worker's memory (docs/DEPLOY.md)",
    )
    models_dir: str | None = Field(None, description="where downloaded models are cached")
    hub_offline: bool = Field(
        False,
        validation_alias="HF_HUB_OFFLINE",
        description="the Hugging Face hub's own switch: use only models already downloaded (the image sets it)",
    )
    onnx_profile_dir: str | None = Field(
        None,
        description="diagnostics: each ONNX Runtime session writes its per-operator trace (chrome://tracing "
        "JSON) here at exit; slows inference",
    )


class ServingSettings(BaseModel):
    """Serving: the HTTP API, its gunicorn workers, admission, limits and the answer cache."""

    bundle_dir: str = Field("build/bundle", description="the index bundle the API serves")
    bind: str = Field("0.0.0.0:8000", description="gunicorn's listening address")
    workers: int = Field(0, ge=0, description="gunicorn workers; 0 = cores // threads (never oversubscribes)")
    preload: bool | None = Field(
        None,
        description="load the bundle and models once, before gunicorn forks (shared pages); unset = on for "
        "the onnx backend with one thread per worker, where it was measured safe and half the memory",
    )
    api_key: SecretStr | None = Field(
        None, description="when set, /answer, /search, /info and /cache/stats need it"
    )
    admin_key: SecretStr | None = Field(
        None, description="guards /cache/purge, /admin/reload and /ingest/*; unset = those routes are off"
    )
    cache_size: int = Field(1024, ge=0, description="answers kept per worker (LRU + TTL); 0 = no cache")
    cache_ttl_seconds: float = Field(300.0, gt=0, description="how long a cached answer is served")
    cache_max_bytes: int = Field(
        64 * 1024**2, ge=1024, description="answers' JSON bytes kept per worker; past it the LRU ones go"
    )
    max_concurrency: int = Field(32, ge=1, description="requests admitted per worker; more get 429")
    max_queue_seconds: float = Field(
        1.0, gt=0, description="a request that would wait longer than this for an inference thread gets 429"
    )
    inference_threads: int = Field(2, ge=1, le=64, description="requests computed at once per worker")
    request_timeout_seconds: float = Field(30.0, gt=0, description="per-request deadline (504 past it)")
    max_body_bytes: int = Field(65_536, ge=1024, description="larger request bodies get 413")
    max_header_bytes: int = Field(
        32_768, ge=1024, le=1_048_576, description="request line and headers; larger requests get 400"
    )
    max_headers: int = Field(100, ge=8, le=1000, description="request headers; more get 431")
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="a request's headers must arrive this soon after its first byte (or the "
        "connection's opening), else the connection is closed",
    )
    max_requests: int = Field(
        20_000, ge=0, description="a worker is replaced after about this many requests (±10%); 0 = never"
    )
    drain_seconds: float = Field(
        0.0, ge=0, description="after SIGTERM, /ready answers 503 this long before the worker stops"
    )
    warmup: bool = Field(True, description="answer one question through every stage before /ready says ready")
    log_json: bool = Field(True, description="log one JSON object per line (else plain text)")
    log_level: str = Field("INFO", description="the root logger's level")
    prometheus_multiproc_dir: str | None = Field(
        None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="prometheus_client's own: where workers write their metrics (the gunicorn config sets it)",
    )


class RetrievalSettings(BaseModel):
    """Retrieval and answers: BM25 (applied when a bundle loads) and each query's defaults (a request may
    override them)."""

    hnsw_ef_search: int = _mirror(DenseParams, "ef_search")
    dense_nprobe: int = _mirror(DenseParams, "nprobe")
    dense_rescore: int = _mirror(DenseParams, "rescore")
    bm25_k1: float = _mirror(Bm25Params, "k1")
    bm25_b: float = _mirror(Bm25Params, "b")
    bm25_title_weight: float = _mirror(Bm25Params, "title_weight")
    bm25_top_k: int = _mirror(RetrievalParams, "bm25_top_k")
    dense_top_k: int = _mirror(RetrievalParams, "dense_top_k")
    fusion: Fusion = _mirror(RetrievalParams, "fusion")
    alpha: float = _mirror(RetrievalParams, "alpha")
    rrf_k: int = _mirror(RetrievalParams, "rrf_k")
    rerank: bool = _mirror(RetrievalParams, "rerank")
    rerank_top_n: int = _mirror(RetrievalParams, "rerank_top_n")
    rerank_text: RerankText = _mirror(RetrievalParams, "rerank_text")
    rerank_weight: float | None = _mirror(RetrievalParams, "rerank_weight")
    rerank_title: bool = _mirror(RetrievalParams, "rerank_title")
    evidence_k: int = _mirror(RetrievalParams, "evidence_k")
    evidence_min_ratio: float = _mirror(RetrievalParams, "evidence_min_ratio")
    mmr_lambda: float = _mirror(RetrievalParams, "mmr_lambda")
    unit_weight: float = _mirror(RetrievalParams, "unit_weight")
    sentence_weight: float = _mirror(RetrievalParams, "sentence_weight")
    abstain_threshold: float = _mirror(
        RetrievalParams,
        "abstain_threshold",
        "without a reranker: abstain below this best-evidence cosine; unset: the threshold recorded in the "
        "embedder's folder (`make models`: 0.602 for bge-small-en), else this default (all-MiniLM-L6-v2)",
    )
    abstain_rerank_threshold: float = _mirror(
        RetrievalParams,
        "abstain_rerank_threshold",
        "with a reranker: abstain below this best probability; unset: the threshold recorded in the "
        "reranker's folder (`make models`: 0.409 for MiniLM-L12, docs/EVALUATION.md), else this default",
    )


class BuildSettings(BaseModel):
    """Building a bundle (`rag build`, ingestion jobs): recorded in its manifest, and the embedding cache."""

    unit: Unit = _mirror(BuildConfig, "unit")
    passage_tokens: int = _mirror(BuildConfig, "passage_tokens")
    unit_title: bool = _mirror(BuildConfig, "unit_title")
    dense_index: DenseKind = _mirror(BuildConfig, "dense_index")
    hnsw_m: int = _mirror(BuildConfig, "hnsw_m")
    hnsw_ef_construction: int = _mirror(BuildConfig, "hnsw_ef_construction")
    stemmer: Literal["english", "none"] = _mirror(BuildConfig, "stemmer")
    max_sentence_chars: int = _mirror(BuildConfig, "max_sentence_chars")
    max_document_chars: int = _mirror(BuildConfig, "max_document_chars")
    max_file_bytes: int = _mirror(BuildConfig, "max_file_bytes")
    max_pages: int = _mirror(BuildConfig, "max_pages")
    evidence_blocks: Annotated[tuple[EvidenceBlock, ...], NoDecode] = _mirror(BuildConfig, "evidence_blocks")
    batch_size: int = _mirror(BuildConfig, "batch_size")
    embedding_cache: str | None = Field(
        None, description="embedding cache file (SQLite): `rag build` default, and in /cache/stats"
    )
    embedding_cache_max_entries: int = Field(2_000_000, ge=1, description="vectors kept; past it LRU go")
    embedding_cache_max_bytes: int = Field(4 * 1024**3, ge=1024, description="vector bytes kept (LRU)")
    ray_address: str | None = Field(
        None,
        description="a Ray cluster (host:port, or `auto`) that `rag build` embeds on; unset = on this machine",
    )
    ray_actors: int = Field(
        0,
        ge=0,
        description="embedding actors on Ray, one CPU and one model each; 0 = the cluster's CPUs less one",
    )


class ArtifactSettings(BaseModel):
    """Bundle artifacts in S3 (`rag artifacts`), and hot reload in the server."""

    artifacts_uri: str | None = Field(None, description="s3://bucket/prefix holding bundles/ and channels/")
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint; default: AWS")
    artifacts_timeout_seconds: float = Field(
        300.0, gt=0, description="deadline of one pull, retries included"
    )
    reload_channel: str | None = Field(None, description="the channel the server follows (hot reload)")
    reload_interval_seconds: float = Field(
        0.0, ge=0, description="how often the server polls its channel; 0 = hot reload off"
    )


class MilvusSettings(BaseModel):
    """Retrieval from Milvus (RAG_RETRIEVAL_BACKEND=milvus): candidates come from the collection
    `rag artifacts publish-milvus` loaded the served bundle's version into (README "Retrieval on Milvus")."""

    retrieval_backend: Literal["bundle", "milvus"] = Field(
        "bundle", description="where the lexical and dense candidates come from: the loaded bundle, or Milvus"
    )
    milvus_uri: str | None = Field(None, description="the Milvus server, e.g. http://milvus:19530")
    milvus_token: SecretStr | None = Field(
        None, description="`user:password` or an API key, if the server asks"
    )
    milvus_prefix: str = Field(
        "rag", description="collections are `<prefix>_v_<version>`, channel aliases `<prefix>_c_<channel>`"
    )
    milvus_timeout_seconds: float = Field(
        2.0, gt=0, description="deadline of one Milvus call (a search, a readiness check)"
    )
    milvus_bm25: bool = Field(
        True, description="BM25 in Milvus (2.5 and later); false for older servers: dense candidates only"
    )


class IngestSettings(BaseModel):
    """Ingestion jobs: build a bundle on this node, then swap to it (README "Ingestion jobs")."""

    ingest_enabled: bool = Field(False, description="POST /ingest/start and friends (admin key needed too)")
    ingest_dir: str = Field("build/ingest", description="job records, logs and the bundles jobs build")
    ingest_poll_seconds: float = Field(
        1.0, gt=0, description="how often each worker looks for a newly activated job bundle"
    )
    ingest_roots: Annotated[tuple[Path, ...], NoDecode] = Field(
        (),
        description="folders an ingestion job may read a local corpus from (comma-separated); empty = local "
        "paths refused, s3:// only",
    )


class GenerationSettings(BaseModel):
    """Optional generation through an OpenAI-compatible inference server (vLLM, TGI, llama.cpp, a hosted API);
    without a base URL it is off and no code path imports its client (README "Generation")."""

    generation_base_url: str | None = Field(
        None, description="the server's root or its /v1 (e.g. http://vllm:8000/v1); unset = generation off"
    )
    generation_model: str | None = Field(None, description="the `model` sent with every completion request")
    generation_api_key: SecretStr | None = Field(None, description="sent as Authorization: Bearer")
    generation_mode: Literal["extractive", "generative"] = Field(
        "extractive", description="the answer mode of requests that do not choose one"
    )
    generation_timeout_seconds: float = Field(
        20.0, gt=0, description="per attempt (per chunk when streaming)"
    )
    generation_retries: int = Field(2, ge=0, le=10, description="retries on 5xx, 429 and connection errors")
    generation_backoff_seconds: float = Field(
        0.25, ge=0, description="first retry's backoff; doubles, jittered"
    )
    generation_breaker_failures: int = Field(
        5, ge=1, description="failed calls in a row that open the circuit"
    )
    generation_breaker_reset_seconds: float = Field(
        30.0, gt=0, description="how long the circuit stays open before one probe call may close it"
    )
    generation_prompt: str | None = Field(None, description="prompt template with {question} and {evidence}")
    generation_prompt_file: str | None = Field(None, description="the same, read from a file at startup")
    generation_max_tokens: int = Field(512, ge=1, le=32768, description="sent with each completion")
    generation_temperature: float = Field(0.0, ge=0.0, le=2.0, description="sent with each completion")
    generation_expansions: int = Field(0, ge=0, le=10, description="LLM paraphrases retrieved and RRF-fused")
    generation_self_query: bool = Field(False, description="LLM-proposed metadata filters (validated)")


SETTINGS_GROUPS: dict[str, type[BaseModel]] = {
    "models": ModelSettings,
    "serving": ServingSettings,
    "retrieval": RetrievalSettings,
    "build": BuildSettings,
    "artifacts": ArtifactSettings,
    "milvus": MilvusSettings,
    "ingest": IngestSettings,
    "generation": GenerationSettings,
}


class Settings(
    ModelSettings,
    ServingSettings,
    RetrievalSettings,
    BuildSettings,
    ArtifactSettings,
    MilvusSettings,
    IngestSettings,
    GenerationSettings,
    BaseSettings,
):
    """The service's configuration: every field is `RAG_<NAME>` in the environment, in the groups above.

    Build, BM25 and query fields take their defaults (and, through `_check_views`, their ranges) from
    BuildConfig, Bm25Params, DenseParams and RetrievalParams, so each default is written once.
    """

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", frozen=True)

    @model_validator(mode="after")
    def _check_views(self) -> Settings:
        # Out-of-range values fail here, at startup, naming the field — not at the first build or query.
        self.build_config()
        self.retrieval_params()
        self.bm25_params()
        self.dense_params()
        if self.reload_interval_seconds > 0 and not (self.artifacts_uri and self.reload_channel):
            raise ValueError(
                "hot reload (RAG_RELOAD_INTERVAL_SECONDS) needs RAG_ARTIFACTS_URI and RAG_RELOAD_CHANNEL"
            )
        self._check_generation()
        if self.retrieval_backend == "milvus" and not self.milvus_uri:
            raise ValueError("RAG_RETRIEVAL_BACKEND=milvus needs RAG_MILVUS_URI")
        return self

    def _check_generation(self) -> None:
        if self.generation_base_url is None:
            wanted = {
                "RAG_GENERATION_MODE=generative": self.generation_mode == "generative",
                "RAG_GENERATION_EXPANSIONS": self.generation_expansions > 0,
                "RAG_GENERATION_SELF_QUERY": self.generation_self_query,
            }
            if used := [name for name, on in wanted.items() if on]:
                raise ValueError(f"{', '.join(used)} needs RAG_GENERATION_BASE_URL (an inference server)")
            return
        if not self.generation_model:
            raise ValueError("RAG_GENERATION_BASE_URL needs RAG_GENERATION_MODEL")
        if self.generation_prompt and self.generation_prompt_file:
            raise ValueError("set RAG_GENERATION_PROMPT or RAG_GENERATION_PROMPT_FILE, not both")

    @field_validator(
        "reranker_model",
        "embedding_revision",
        "reranker_revision",
        "api_key",
        "admin_key",
        "generation_base_url",
        "generation_model",
        "generation_api_key",
        "generation_prompt",
        "generation_prompt_file",
        "embedding_cache",
        "milvus_uri",
        "milvus_token",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `RAG_RERANKER_MODEL=` (empty) is how a deployment turns the reranker off.
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "off") else value

    @field_validator("ingest_roots", "evidence_blocks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def build_config(self) -> BuildConfig:
        return BuildConfig(**{name: getattr(self, name) for name in BuildConfig.model_fields})

    def retrieval_params(self) -> RetrievalParams:
        return RetrievalParams(**{name: getattr(self, name) for name in RetrievalParams.model_fields})

    def bm25_params(self) -> Bm25Params:
        return Bm25Params(k1=self.bm25_k1, b=self.bm25_b, title_weight=self.bm25_title_weight)

    def dense_params(self) -> DenseParams:
        return DenseParams(
            ef_search=self.hnsw_ef_search, nprobe=self.dense_nprobe, rescore=self.dense_rescore
        )

    def effective_threads(self) -> int:
        return self.threads or available_cpus()

    def secrets(self) -> list[str]:
        """Every value never to show: the keys, and the credentials of any URL setting."""
        found = [v.get_secret_value() for _, v in self if isinstance(v, SecretStr)]
        for _, value in self:
            if isinstance(value, str):
                found += url_credentials(value)
        return found

    def public(self) -> dict[str, Any]:
        """The settings as /info shows them: keys masked, URL credentials masked."""
        return {
            name: mask_url(value) if isinstance(value, str) else value
            for name, value in self.model_dump(mode="json").items()
        }


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, remembered for redaction; ConfigError names what is wrong without
    echoing any value (pydantic's own message quotes the input, secrets included)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'RAG_' + str(error['loc'][0]).upper() + ': ' if error['loc'] else ''}{error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    remember(settings.secrets())
    return settings


def child_environment(settings: Settings | None) -> dict[str, str]:
    """The environment of a child process that must run with these settings (an ingestion job's build): this
    process's own (PATH, credentials, …) with every RAG_* variable rewritten from `settings`, so the child
    builds with the models and options the server was configured with, however they were given."""
    env = dict(os.environ)
    if settings is None:
        return env
    env = {k: v for k, v in env.items() if not k.startswith("RAG_")}
    for name, value in settings:
        if value is None or Settings.model_fields[name].validation_alias:  # not a RAG_* variable
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, tuple | list):
            value = ",".join(str(item) for item in value)
        env[f"RAG_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may really use: its affinity, capped by a cgroup v2 CPU quota.

    In a Kubernetes pod with `limits.cpu: 2` on a 64-core node the affinity still shows 64 cores; sizing
    workers or ORT threads from that oversubscribes the quota and the pod is throttled.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) // int(period))
    except (OSError, ValueError):
        pass
    return max(1, cpus)
