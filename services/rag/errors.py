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
    └── QueryError             a question or parameters the pipeline cannot answer

The CLI maps every RagError to exit code 2 with one line; the API (later) maps `error_type` to an HTTP status
in one place.
"""

from __future__ import annotations

__all__ = [
    "BundleCorrupt",
    "BundleError",
    "BundleModelMismatch",
    "BundleNotFound",
    "BundleVersionError",
    "ConfigError",
    "CorpusError",
    "ModelError",
    "QueryError",
    "RagError",
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
