"""One exception tree for the whole package.

    RagError
    ├── ConfigError            settings that cannot work together
    ├── CorpusError            nothing (usable) to build from, conflicting documents
    ├── ModelError             a model that cannot be loaded or does not match
    ├── BundleError            an index bundle that is missing, changed, or of another kind
    │   ├── BundleNotFound
    │   ├── BundleCorrupt      a checksum or a file does not match the manifest
    │   ├── BundleVersionError unknown format version
    │   └── BundleModelMismatch built with another embedding model than the configured one
    ├── QueryError             a question or parameters the pipeline cannot answer
    │   └── GenerationNotConfigured  generative mode asked of a server without an inference server
    ├── GenerationError        the inference server failed or answered unusably (answers fall back, never fail)
    └── ArtifactError          bundle artifacts in S3
        ├── ArtifactNotFound   no such version, channel or object
        ├── ArtifactConflict   a version that exists already with other content (versions are immutable)
        └── StorageUnavailable S3 unreachable until the deadline, or refusing access

The CLI maps every RagError to exit code 2 with one line; the API (later) maps `error_type` to an HTTP status
in one place.
"""

from __future__ import annotations

__all__ = [
    "ArtifactConflict",
    "ArtifactError",
    "ArtifactNotFound",
    "BundleCorrupt",
    "BundleError",
    "BundleModelMismatch",
    "BundleNotFound",
    "BundleVersionError",
    "ConfigError",
    "CorpusError",
    "GenerationError",
    "GenerationNotConfigured",
    "ModelError",
    "QueryError",
    "RagError",
    "StorageUnavailable",
]


class RagError(Exception):
    """Base of every error this package raises on purpose."""

    error_type = "rag_error"


class ConfigError(RagError):
    error_type = "config_error"


class CorpusError(RagError):
    error_type = "corpus_error"


class ModelError(RagError):
    error_type = "model_error"


class BundleError(RagError):
    error_type = "bundle_error"


class BundleNotFound(BundleError):
    error_type = "bundle_not_found"


class BundleCorrupt(BundleError):
    error_type = "bundle_corrupt"


class BundleVersionError(BundleError):
    error_type = "bundle_version"


class BundleModelMismatch(BundleError):
    error_type = "bundle_model_mismatch"


class QueryError(RagError):
    error_type = "query_error"


class GenerationNotConfigured(QueryError):
    error_type = "generation_not_configured"


class GenerationError(RagError):
    """`reason` is the answer's `generation.fallback_reason` (timeout, server_error, circuit_open, ...)."""

    error_type = "generation_error"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ArtifactError(RagError):
    error_type = "artifact_error"


class ArtifactNotFound(ArtifactError):
    error_type = "artifact_not_found"


class ArtifactConflict(ArtifactError):
    error_type = "artifact_conflict"


class StorageUnavailable(ArtifactError):
    error_type = "storage_unavailable"
