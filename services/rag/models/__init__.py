"""Models: embedder and cross-encoder protocols, backends, loading by settings."""

from .base import OFFLINE_MINILM, CrossEncoderModel, EmbeddingModel, ModelIdentity, known_prefixes
from .loading import load_embedder, load_reranker

__all__ = [
    "OFFLINE_MINILM",
    "CrossEncoderModel",
    "EmbeddingModel",
    "ModelIdentity",
    "known_prefixes",
    "load_embedder",
    "load_reranker",
]
