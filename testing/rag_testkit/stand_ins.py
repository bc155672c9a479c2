"""A stand-in embedder for measuring what a build does around the model, not the model."""

from __future__ import annotations

import numpy as np

from rag.models.base import ModelIdentity

__all__ = ["RandomEmbedder"]


class RandomEmbedder:
    """Random unit vectors of any width, at no cost: a build's own work and memory, with the model's
    output size. A Ray build's head is in this position (its model runs on the workers)."""

    def __init__(self, dim: int) -> None:
        self.identity = ModelIdentity(f"random-{dim}", "0" * 64, dim, "", "", 512)

    def encode(
        self, texts: list[str], *, kind: str, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        vectors = np.random.default_rng(len(texts)).standard_normal(
            (len(texts), self.identity.dim), dtype=np.float32
        )
        normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normalised
