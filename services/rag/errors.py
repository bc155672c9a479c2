"""The one exception tree of the package. Each class below carries its `error_type` (the API's and the job
records' machine-readable name), the HTTP `status` the API answers it with (api/errors.py), and its meaning
as the first line of its docstring. The README's error table is made from them (`python -m rag.reference`),
so the overview is not written out again here, where it could drift.

The CLI maps every RagError to exit code 2 with one line.
"""

from __future__ import annotations

__all__ = [
    "ArtifactConflict",
    "ArtifactError",
    "ArtifactNotFound",
    "BadCorpus",
    "BundleCorrupt",
    "BundleError",
    "BundleModelMismatch",
    "BundleNotFound",
    "BundleVersionError",
    "ConfigError",
    "CorpusError",
    "DeadlineExceeded",
    "DistributedBuildError",
    "EmbeddingCacheError",
    "Forbidden",
    "GenerationError",
    "GenerationNotConfigured",
    "JobBusy",
    "JobConflict",
    "JobNotActive",
    "MilvusError",
    "ModelError",
    "NotReady",
    "Overloaded",
    "QueryError",
    "RagError",
    "ReloadRejected",
    "RetrievalUnavailable",
    "StorageUnavailable",
    "Unauthorized",
    "UnknownDocument",
    "UnknownJob",
]


class RagError(Exception):
    """Base of every error this package raises on purpose."""

    error_type = "rag_error"
    status = 500


class ConfigError(RagError):
    """Settings that cannot work together."""

    error_type = "config_error"


class CorpusError(RagError):
    """Nothing (usable) to build from, or documents that conflict."""

    error_type = "corpus_error"


class ModelError(RagError):
    """A model that cannot be loaded or does not match."""

    error_type = "model_error"
    status = 503


class BundleError(RagError):
    """An index bundle that cannot be served."""

    error_type = "bundle_error"
    status = 503


class BundleNotFound(BundleError):
    """No bundle at the configured path."""

    error_type = "bundle_not_found"


class BundleCorrupt(BundleError):
    """A file of the bundle does not match its manifest's checksum."""

    error_type = "bundle_corrupt"


class BundleVersionError(BundleError):
    """A bundle of a format version this release does not read."""

    error_type = "bundle_version"


class BundleModelMismatch(BundleError):
    """A bundle built with another embedding model than the configured one."""

    error_type = "bundle_model_mismatch"


class QueryError(RagError):
    """A question or parameters the pipeline cannot answer (empty, too long, out of range)."""

    error_type = "query_error"
    status = 422


class GenerationNotConfigured(QueryError):
    """Generative mode asked of a server with no inference server (RAG_GENERATION_BASE_URL)."""

    error_type = "generation_not_configured"


class GenerationError(RagError):
    """The inference server failed or answered unusably; the answer falls back, so no client sees it.

    `reason` is the answer's `generation.fallback_reason` (timeout, server_error, circuit_open, ...)."""

    error_type = "generation_error"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EmbeddingCacheError(RagError):
    """The embedding cache file cannot be used."""

    error_type = "embedding_cache"


class ArtifactError(RagError):
    """Bundle artifacts in S3 that cannot be used."""

    error_type = "artifact_error"
    status = 502


class ArtifactNotFound(ArtifactError):
    """No such version, channel or object."""

    error_type = "artifact_not_found"
    status = 404


class ArtifactConflict(ArtifactError):
    """A version that exists already with other content (versions are immutable)."""

    error_type = "artifact_conflict"
    status = 409


class StorageUnavailable(ArtifactError):
    """S3 unreachable until the deadline, or refusing access."""

    error_type = "storage_unavailable"
    status = 503


class ReloadRejected(ArtifactError):
    """A hot-reload version that failed to load before (it is not tried again)."""

    error_type = "reload_rejected"


class MilvusError(RagError):
    """A Milvus collection that cannot be published or served: wrong row count, failed probe, too-long text."""

    error_type = "milvus_error"
    status = 502


class DistributedBuildError(RagError):
    """A build on a Ray cluster (`rag build --ray`) that could not finish; no bundle is left behind."""

    error_type = "distributed_build_error"
    status = 502


class RetrievalUnavailable(RagError):
    """Milvus (RAG_RETRIEVAL_BACKEND=milvus) unreachable, too slow, or without this version: retry later.

    The request was not answered; `/ready` says the same, with the reason."""

    error_type = "retrieval_unavailable"
    status = 503


class Overloaded(RagError):
    """This worker's admission is full (RAG_MAX_CONCURRENCY, RAG_MAX_QUEUE_SECONDS); see Retry-After."""

    error_type = "overloaded"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(RagError):
    """The request passed its deadline (RAG_REQUEST_TIMEOUT_SECONDS)."""

    error_type = "deadline_exceeded"
    status = 504


class UnknownJob(RagError):
    """No ingestion job of that id."""

    error_type = "job_not_found"
    status = 404


class UnknownDocument(RagError):
    """No document of that id in the served bundle (a citation from another version of the collection?)."""

    error_type = "document_not_found"
    status = 404


class BadCorpus(RagError):
    """A corpus an ingestion job cannot read, or outside RAG_INGEST_ROOTS."""

    error_type = "bad_corpus"
    status = 422


class JobConflict(RagError):
    """A job that cannot do what was asked in its state (activating one that has not succeeded or whose bundle is gone)."""

    error_type = "job_conflict"
    status = 409


class JobBusy(JobConflict):
    """Another ingestion job is queued or running on this node."""


class JobNotActive(JobConflict):
    """Cancelling a job that has already finished."""


class Unauthorized(RagError):
    """A missing or wrong API key or admin key."""

    error_type = "unauthorized"
    status = 401


class Forbidden(RagError):
    """A feature that is off (RAG_ADMIN_KEY unset, ingestion or hot reload off)."""

    error_type = "forbidden"
    status = 403


class NotReady(RagError):
    """The worker is starting, draining or failed to load."""

    error_type = "not_ready"
    status = 503
