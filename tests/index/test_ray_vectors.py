"""How the driver of a Ray build places vectors: each chunk is written to its rows as it arrives (in any
order), never gathered in memory, and with an embedding cache only the texts the cache lacks are sent. Ray is
stood in for by a dataset that embeds the chunks in this process and yields them last first; real clusters
are in tests/ray."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rag_testkit.samples import sentences_corpus

import ray
from rag.config import BuildConfig
from rag.corpus import load_corpus
from rag.index import Builder, read_manifest
from rag.index.ray_embedding import RayEmbedding


class _LastChunkFirst:
    """Ray Data's dataset as the driver sees it: rows of embedded chunks, here in reverse order."""

    def __init__(self, items: list[dict[str, Any]], embedder: Any, sent: list[int]) -> None:
        self.items, self.embedder, self.sent = items, embedder, sent

    def map_batches(
        self, fn: Any, *, fn_constructor_kwargs: dict[str, Any], **kwargs: Any
    ) -> _LastChunkFirst:
        self.batch_size = fn_constructor_kwargs["batch_size"]
        return self

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        for item in reversed(self.items):
            self.sent.append(len(item["texts"]))
            vectors = self.embedder.encode(item["texts"], kind="passage", batch_size=self.batch_size)
            vectors = vectors.astype(np.float32).tobytes()
            yield {"chunk": item["chunk"], "vectors": vectors, "node": "n1", "seconds": 0.1}


@pytest.fixture
def stand_in_ray(monkeypatch: pytest.MonkeyPatch, tiny_embedder: Any) -> list[int]:
    """Texts sent to "Ray", per chunk."""
    sent: list[int] = []
    monkeypatch.setattr(RayEmbedding, "_connect", lambda self, ray: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 3.0})
    monkeypatch.setattr(
        ray.data, "from_items", lambda items, **_: _LastChunkFirst(items, tiny_embedder, sent)
    )
    return sent


def _digests(bundle: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in read_manifest(bundle).files
    }


def test_chunks_arriving_in_any_order_land_on_their_rows(
    tmp_path: Path, tiny_embedder: Any, tiny_settings: Any, stand_in_ray: list[int]
) -> None:
    documents, _ = load_corpus(sentences_corpus(tmp_path / "corpus"))
    Builder(tiny_embedder, BuildConfig()).build(documents, tmp_path / "local")
    on_ray = Builder(tiny_embedder, BuildConfig(), ray=RayEmbedding("10.0.0.9:6379", tiny_settings))
    on_ray.build(documents, tmp_path / "ray")
    assert len(stand_in_ray) == 3, stand_in_ray  # ~1,260 units: three chunks, delivered last first
    assert _digests(tmp_path / "ray") == _digests(tmp_path / "local")
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir()
    ), "the build's scratch vectors were left in the bundle"


def test_a_cache_smaller_than_the_corpus_still_gives_the_bytes_of_a_local_build(
    tmp_path: Path, tiny_embedder: Any, tiny_settings: Any, stand_in_ray: list[int]
) -> None:
    """The rebuild's lookup finds the last build's newest 600 vectors; storing the first chunk's new ones
    evicts them before their chunks are filled, so those are embedded on the driver instead."""
    documents, _ = load_corpus(sentences_corpus(tmp_path / "corpus"))
    cache = tmp_path / "cache.sqlite"

    def ray_build(out: str) -> Any:
        builder = Builder(
            tiny_embedder,
            BuildConfig(),
            cache_path=cache,
            cache_max_entries=600,
            ray=RayEmbedding("10.0.0.9:6379", tiny_settings),
        )
        return builder.build(documents, tmp_path / out)

    cold = ray_build("cold")
    assert cold.cache_hits == 0 and cold.embedded == cold.manifest.counts["units"] > 1024
    sent_cold = sum(stand_in_ray)
    rebuilt = ray_build("rebuilt")
    sent_again = sum(stand_in_ray) - sent_cold
    assert 0 < sent_again < sent_cold, "the rebuild sent what the cache held"
    assert rebuilt.embedded > sent_again, "no vector was evicted mid-build: the case is not exercised"
    local = Builder(tiny_embedder, BuildConfig(), cache_path=tmp_path / "local-cache.sqlite")
    local.build(documents, tmp_path / "local-cached")
    assert _digests(tmp_path / "cold") == _digests(tmp_path / "local-cached")
    assert _digests(tmp_path / "rebuilt") == _digests(tmp_path / "local-cached")
