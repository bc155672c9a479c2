"""rag: question answering over a document collection with verbatim, cited evidence."""

from .config import BuildConfig, RetrievalParams, Settings
from .corpus import Document, load_corpus
from .errors import (
    BundleCorrupt,
    BundleError,
    BundleModelMismatch,
    BundleNotFound,
    BundleVersionError,
    ConfigError,
    CorpusError,
    ModelError,
    QueryError,
    RagError,
)
from .index import Builder, Bundle
from .pipeline import Answer, Evidence, Pipeline, SearchResult

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "BuildConfig",
    "Builder",
    "Bundle",
    "BundleCorrupt",
    "BundleError",
    "BundleModelMismatch",
    "BundleNotFound",
    "BundleVersionError",
    "ConfigError",
    "CorpusError",
    "Document",
    "Evidence",
    "ModelError",
    "Pipeline",
    "QueryError",
    "RagError",
    "RetrievalParams",
    "SearchResult",
    "Settings",
    "load_corpus",
]
