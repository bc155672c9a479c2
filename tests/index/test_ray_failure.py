"""A build whose embedding on Ray cannot finish: the Builder raises DistributedBuildError with Ray's reason and
leaves neither a bundle nor its temp folder. Ray is stood in for here, failing after one chunk arrived; real
clusters and a lost node are in tests/ray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ray
from rag.config import BuildConfig
from rag.corpus import load_corpus
from rag.errors import DistributedBuildError
from rag.index import Builder
from rag.index.ray_embedding import RayEmbedding


class _DatasetThatFailsAfterOneChunk:
    def __init__(self, items: list[dict[str, Any]], dim: int) -> None:
        self.items, self.dim = items, dim

    def map_batches(self, *args: Any, **kwargs: Any) -> _DatasetThatFailsAfterOneChunk:
        return self

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        first = self.items[0]
        vectors = np.ones((len(first["texts"]), self.dim), np.float32)
        yield {"chunk": 0, "vectors": vectors.tobytes(), "node": "n1", "seconds": 0.1}
        raise RuntimeError(
            "ray.exceptions.ActorDiedError: the actor died unexpectedly before finishing this task"
        )


def test_a_ray_build_that_cannot_finish_says_why_and_leaves_nothing(
    tmp_path: Path, corpus_dir: Path, tiny_embedder, tiny_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dim = tiny_embedder.identity.dim
    monkeypatch.setattr(RayEmbedding, "_connect", lambda self, ray: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 3.0})
    monkeypatch.setattr(
        ray.data, "from_items", lambda items, **kwargs: _DatasetThatFailsAfterOneChunk(items, dim)
    )
    documents, _ = load_corpus(corpus_dir)
    builder = Builder(tiny_embedder, BuildConfig(), ray=RayEmbedding("10.0.0.9:6379", tiny_settings))
    out = tmp_path / "out" / "bundle"
    out.parent.mkdir()
    with pytest.raises(DistributedBuildError) as failed:
        builder.build(documents, out)
    assert str(failed.value).startswith("embedding on Ray (10.0.0.9:6379) failed: RuntimeError: ")
    assert "the actor died unexpectedly" in str(failed.value)
    assert list(out.parent.iterdir()) == [], "a bundle or its temp folder was left behind"
