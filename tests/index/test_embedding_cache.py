"""The embedding cache: keys, bounds (entries, bytes), LRU eviction, stats/purge, and incremental builds."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.config import BuildConfig
from rag.corpus import Document
from rag.index import Builder, read_manifest
from rag.index.embedding_cache import EmbeddingCache, embedder_namespace


def checksums(path: Path) -> dict[str, str]:
    """The sha256 of every bundle file as manifest.json lists them (manifest.json itself, which holds the
    build time `created_at`, is not among them)."""
    return {name: entry.sha256 for name, entry in read_manifest(path).files.items()}


def fake_vectors(texts: list[str], dim: int = 4) -> np.ndarray:
    return np.asarray(
        [[float(len(t)), float(sum(map(ord, t)) % 97), 1.0, float(i)] for i, t in enumerate(texts)],
        dtype=np.float32,
    )[:, :dim]


class Computed:
    """A `compute` callback that records what it was asked to embed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return fake_vectors(texts)

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


def put(cache: EmbeddingCache, *texts: str, compute: Computed | None = None) -> np.ndarray:
    return cache.encode(list(texts), "ns", 4, compute or Computed())


def keys_present(cache: EmbeddingCache, *texts: str) -> set[str]:
    compute = Computed()
    put(cache, *texts, compute=compute)  # NB: this touches them; only use it as the last look
    return set(texts) - set(compute.texts)


ENTRY_BYTES = 4 * 4 + 32  # 4 float32 + the sha256 key


def totals_agree(cache: EmbeddingCache) -> bool:
    """The running totals the bounds are checked against equal what the table holds."""
    stats = cache.stats()
    return cache._totals() == (stats.entries, stats.bytes)


def test_hits_return_the_stored_vector_exactly_and_compute_only_misses(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        compute = Computed()
        first = cache.encode(["a", "bb", "a"], "ns", 4, compute)
        assert compute.calls == [["a", "bb"]]  # a repeated text is embedded once
        again = cache.encode(["bb", "ccc", "a"], "ns", 4, compute)
        assert compute.calls[1] == ["ccc"]
        assert again[0].tobytes() == first[1].tobytes() and again[2].tobytes() == first[0].tobytes()
        assert (cache.hits, cache.misses) == (3, 3)  # the repeat of "a" counts as a hit


def test_uncached_names_what_encode_would_compute_without_reading_a_vector(tmp_path: Path) -> None:
    """What a Ray build dispatches: each missing text's first position, none of the cached ones."""
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        put(cache, "a", "b")
        assert cache.uncached(["b", "c", "a", "c", "d"], "ns", 4) == [1, 4]
        assert cache.uncached(["a"], "ns", 4, prefix="passage: ") == [0]
        assert cache.uncached(["a"], "other", 4) == [0] and cache.uncached(["a"], "ns", 8) == [0]
        compute = Computed()
        cache.encode(["b", "c", "a", "c", "d"], "ns", 4, compute)
        assert compute.calls == [["c", "d"]]  # what uncached() named
        assert (cache.hits, cache.misses) == (3, 4)  # b, a and the repeat of c; a, b, c, d


def test_the_key_covers_namespace_and_prefix(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        compute = Computed()
        cache.encode(["a"], "model-1", 4, compute)
        cache.encode(["a"], "model-2", 4, compute)
        cache.encode(["a"], "model-1", 4, compute, prefix="passage: ")
        cache.encode(["a"], "model-1", 4, compute)
        assert len(compute.calls) == 3


def test_namespace_tells_backend_variants_of_one_model_apart(tiny_embedder: Any) -> None:
    embedder = tiny_embedder

    @dataclass
    class Variant:
        identity: Any
        cache_variant: str

    fp32 = Variant(embedder.identity, "onnx:aaa")
    int8 = Variant(embedder.identity, "onnx:bbb")
    other_revision = Variant(replace(embedder.identity, revision="abc"), "onnx:aaa")
    longer = Variant(replace(embedder.identity, max_seq_length=64), "onnx:aaa")
    names = {embedder_namespace(v) for v in (fp32, int8, other_revision, longer)}
    assert len(names) == 4
    assert embedder_namespace(embedder).endswith("torch:torch.float32")


def test_entry_bound_evicts_least_recently_used_first(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite", max_entries=3) as cache:
        put(cache, "a")
        put(cache, "b")
        put(cache, "c")
        put(cache, "a")  # a hit: a is now the most recently used, b the least
        put(cache, "d")
        assert cache.evictions == 1 and cache.stats().entries == 3
        put(cache, "e")  # then c goes
        stats = cache.stats()
        assert stats.entries == 3 and stats.evictions == 2
        assert keys_present(cache, "a", "b", "c", "d", "e") == {"a", "d", "e"}


def test_byte_bound_holds_when_inserting_past_it(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite", max_bytes=5 * ENTRY_BYTES + 10) as cache:
        for i in range(20):
            put(cache, f"text {i}")
            assert cache.stats().bytes <= 5 * ENTRY_BYTES + 10
        assert cache.stats().entries == 5
        # one call larger than the bound: the vectors are still returned, and the newest 5 kept
        compute = Computed()
        vectors = cache.encode([f"big {i}" for i in range(12)], "ns", 4, compute)
        assert vectors.shape == (12, 4) and len(compute.texts) == 12
        assert cache.stats().entries == 5 and cache.stats().bytes == 5 * ENTRY_BYTES
        assert totals_agree(cache)


def test_bounds_and_lru_clock_persist_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with EmbeddingCache(path, max_entries=2) as cache:
        put(cache, "a")
        put(cache, "b")
    with EmbeddingCache(path, max_entries=2) as cache:
        put(cache, "a")  # touched in a later run: newer than b
        put(cache, "c")
        assert cache.stats().hits == 1 and cache.stats().evictions == 1
        assert keys_present(cache, "a", "b", "c") == {"a", "c"}


def test_stats_and_purge_per_table(tmp_path: Path) -> None:
    clock = iter(range(100, 200))
    with EmbeddingCache(tmp_path / "c.sqlite", clock=lambda: float(next(clock))) as cache:
        cache.encode(["a", "b"], "model-1", 4, Computed())
        cache.encode(["a"], "model-2", 4, Computed())
        cache.encode(["a"], "model-2", 4, Computed())
        stats = cache.stats()
        assert (stats.entries, stats.bytes) == (3, 3 * ENTRY_BYTES)
        assert (stats.oldest, stats.newest) == (100.0, 101.0)
        assert (stats.hits, stats.misses) == (1, 3) and stats.hit_rate == 0.25
        assert [(t.model, t.entries) for t in stats.tables] == [("model-1", 2), ("model-2", 1)]
        assert totals_agree(cache)
        assert cache.purge("model-1") == 2
        assert [t.model for t in cache.stats().tables] == ["model-2"] and totals_agree(cache)
        assert cache.purge() == 1
        assert cache.stats().entries == 0 and cache.stats().hits == 0 and totals_agree(cache)
        cache.encode(["c"], "model-1", 4, Computed())
        assert totals_agree(cache) and cache.stats().entries == 1


def test_a_cache_of_the_old_layout_is_dropped_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE vectors (key BLOB PRIMARY KEY, dim INTEGER, vector BLOB)")
    con.execute("INSERT INTO vectors VALUES (?, 4, ?)", (EmbeddingCache.key("ns", "a"), bytes(16)))
    con.commit()
    con.close()
    with EmbeddingCache(path) as cache:
        compute = Computed()
        put(cache, "a", compute=compute)
        assert compute.texts == ["a"]
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---- builds ------------------------------------------------------------------------------------------


class CountingEmbedder:
    """Wraps the real (tiny) embedder; counts the texts it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.cache_variant = inner.cache_variant
        self.texts: list[str] = []

    def encode(
        self, texts: list[str], *, kind: str, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        self.texts.extend(texts)
        return np.asarray(self.inner.encode(texts, kind=kind, batch_size=batch_size))


WORDS = [
    "cell",
    "protein",
    "gene",
    "expression",
    "tumour",
    "patients",
    "risk",
    "trial",
    "dose",
    "vaccine",
    "immune",
    "response",
    "receptor",
    "binding",
    "mouse",
    "model",
    "pathway",
    "signalling",
    "mutation",
    "cohort",
    "mortality",
    "infection",
    "virus",
    "bacteria",
    "antibody",
    "therapy",
]


def synthetic_corpus(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))).capitalize() + "."

    return [
        Document(
            id=f"d{i:03d}",
            title=" ".join(rng.choice(WORDS) for _ in range(3)),
            text=" ".join(sentence() for _ in range(rng.randint(2, 5))),
        )
        for i in range(n)
    ]


def changed(documents: list[Document], every: int) -> tuple[list[Document], list[int]]:
    out = list(documents)
    picked = list(range(0, len(documents), every))
    for i in picked:
        out[i] = replace(out[i], text=out[i].text + " A newly added sentence about vaccine trials.")
    return out, picked


@pytest.mark.parametrize(("unit", "index"), [("sentence", "flat"), ("passage", "hnsw")])
def test_rebuild_after_1pct_change_embeds_only_changed_units_and_matches_a_cold_build(
    tmp_path: Path, embedder: Any, unit: str, index: str
) -> None:
    config = BuildConfig(unit=unit, dense_index=index, passage_tokens=16)
    documents = synthetic_corpus(200)
    cache = tmp_path / "cache.sqlite"
    first = CountingEmbedder(embedder)
    Builder(first, config, cache_path=cache).build(documents, tmp_path / "v1")
    # warm, same corpus: nothing embedded, same file checksums as the cold build
    warm = CountingEmbedder(embedder)
    result = Builder(warm, config, cache_path=cache).build(documents, tmp_path / "v1-warm")
    assert warm.texts == [] and result.embedded == 0
    assert checksums(tmp_path / "v1-warm") == checksums(tmp_path / "v1")

    new_docs, picked = changed(documents, every=100)  # 2 of 200 documents: 1%
    rebuild = CountingEmbedder(embedder)
    result = Builder(rebuild, config, cache_path=cache).build(new_docs, tmp_path / "v2")
    assert rebuild.texts and result.embedded == len(set(rebuild.texts))
    # only texts of the changed documents were embedded: each contains the new sentence, or (passage
    # units) a window over the changed document's sentences
    assert all("newly added" in t or any(new_docs[i].title in t for i in picked) for t in rebuild.texts)
    assert len(rebuild.texts) < 0.05 * len(first.texts)

    # a cold build of the changed corpus: with a fresh cache, and with no cache (batch-invariant embedding,
    # which --cache turns on) give the rebuild's file checksums
    Builder(embedder, config, cache_path=tmp_path / "fresh.sqlite").build(new_docs, tmp_path / "v2-cold")
    Builder(embedder, config, batch_invariant=True).build(new_docs, tmp_path / "v2-nocache")
    assert checksums(tmp_path / "v2") == checksums(tmp_path / "v2-cold") == checksums(tmp_path / "v2-nocache")
    assert set(checksums(tmp_path / "v2")) >= {"dense.faiss", "store.sqlite", "bm25/vocab.json"}
