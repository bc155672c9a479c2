"""sentence-transformers backend (torch): building bundles and serving until the onnx backend is chosen."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .base import ModelIdentity, default_max_length, encode_in_chunks
from .vocabulary import unread_share

__all__ = ["TorchCrossEncoder", "TorchEmbedder"]


class TorchEmbedder:
    def __init__(
        self,
        folder: str,
        name: str,
        fingerprint: str,
        query_prefix: str,
        passage_prefix: str,
        max_seq_length: int | None,
        threads: int,
        revision: str | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(folder, device="cpu", local_files_only=True)
        if max_seq_length:
            self._model.max_seq_length = max_seq_length
        dim = self._model.get_embedding_dimension()
        self.identity = ModelIdentity(
            name=name,
            fingerprint=fingerprint,
            dim=int(dim),
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            max_seq_length=int(self._model.max_seq_length),
            revision=revision,
        )
        self.cache_variant = f"torch:{self._model.dtype}"  # the embedding cache's key: fp32 ≠ bf16 vectors

    def encode(
        self, texts: list[str], *, kind: str, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        def run(chunk: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            vectors = self._model.encode(
                chunk,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            yield np.arange(len(chunk)), vectors

        prefix = self.identity.query_prefix if kind == "query" else self.identity.passage_prefix
        return encode_in_chunks(texts, prefix, self.identity.dim, run, progress)

    def unread_share(self, texts: list[str]) -> float:
        """How much of `texts` the vocabulary can only spell (`vocabulary.unread_share`)."""
        return _unread_share(self._model.tokenizer, texts, self.identity.max_seq_length)


class TorchCrossEncoder:
    def __init__(self, folder: str, name: str, max_seq_length: int | None, threads: int) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        torch.set_num_threads(threads)
        self.name = name
        # Not always 512: a model with fewer position embeddings would fail on long pairs instead of truncating.
        self.max_length = max_seq_length or default_max_length(folder)
        self._model: Any = CrossEncoder(
            folder, device="cpu", max_length=self.max_length, local_files_only=True
        )

    def unread_share(self, texts: list[str]) -> float:
        """How much of `texts` the vocabulary can only spell (`vocabulary.unread_share`)."""
        return _unread_share(self._model.tokenizer, texts, self.max_length)

    def score(self, query: str, passages: list[str], *, batch_size: int = 32) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        import torch

        logits = self._model.predict(
            [(query, p) for p in passages],
            batch_size=batch_size,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        logits = np.asarray(logits, dtype=np.float64).reshape(len(passages), -1)[:, 0]
        return np.asarray([1.0 / (1.0 + math.exp(-x)) for x in logits], dtype=np.float32)


def _unread_share(tokenizer: Any, texts: list[str], most: int) -> float:
    pieces = (piece for text in texts for piece in tokenizer.tokenize(text)[:most])
    return unread_share(pieces, tokenizer.unk_token)
