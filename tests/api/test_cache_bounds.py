"""Answer cache bounds (entries, bytes, TTL) and `GET /cache/stats` with the node's embedding cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.api.cache import AnswerCache
from rag.config import Settings
from rag.index import Bundle
from rag.index.embedding_cache import EmbeddingCache
from rag.pipeline import Answer, Pipeline


@pytest.fixture()
def pipeline(sample_bundle: Path, embedder: Any, settings: Settings) -> Pipeline:
    return Pipeline(Bundle.load(sample_bundle), embedder, None, settings.retrieval_params())


def ready(client: TestClient) -> TestClient:
    deadline = time.monotonic() + 30
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.02)
    return client


def answer(text: str, size: int = 0) -> Answer:
    return Answer(
        question=text,
        answer=text + "x" * size,
        abstained=False,
        confidence=1.0,
        evidence=[],
        timings_ms={},
        corpus_id="c",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry_size(key: str, value: Answer) -> int:
    return len(key) + len(value.model_dump_json())


def test_byte_bound_holds_when_inserting_past_it_evicting_lru_first() -> None:
    one = entry_size("k00", answer("k00", 500))
    cache = AnswerCache(capacity=1000, ttl_seconds=60, max_bytes=3 * one + 10)
    for i in range(3):
        cache.put(f"k{i:02d}", answer(f"k{i:02d}", 500))
    assert cache.get("k00") is not None  # k00 is now the most recent; k01 the least
    for i in range(3, 12):
        cache.put(f"k{i:02d}", answer(f"k{i:02d}", 500))
        assert cache.bytes <= 3 * one + 10 and len(cache) <= 3
        if i == 3:
            assert cache.get("k01") is None and cache.get("k00") is not None
    assert cache.stats().bytes == cache.bytes == 3 * one and cache.evictions == 9


def test_entry_bound_and_replacing_a_key_keeps_the_byte_count_exact() -> None:
    cache = AnswerCache(capacity=2, ttl_seconds=60)
    cache.put("a", answer("a", 10))
    cache.put("a", answer("a", 100))
    assert len(cache) == 1 and cache.bytes == entry_size("a", answer("a", 100))
    cache.put("b", answer("b"))
    cache.put("c", answer("c"))
    assert len(cache) == 2 and cache.get("a") is None
    assert cache.bytes == entry_size("b", answer("b")) + entry_size("c", answer("c"))
    assert cache.purge() == 2 and cache.bytes == 0


def test_an_answer_larger_than_the_byte_bound_is_not_cached() -> None:
    cache = AnswerCache(capacity=10, ttl_seconds=60, max_bytes=1024)
    cache.put("small", answer("small"))
    cache.put("big", answer("big", 5000))
    assert cache.get("big") is None and cache.get("small") is not None and cache.evictions == 0


def test_expired_entries_are_swept_and_stats_report_ages_and_hit_rate() -> None:
    clock = Clock()
    cache = AnswerCache(capacity=10, ttl_seconds=10, clock=clock)
    cache.put("a", answer("a"))
    clock.now = 4.0
    cache.put("b", answer("b"))
    clock.now = 6.0
    assert cache.get("a") is not None and cache.get("zz") is None
    stats = cache.stats()
    assert (stats.entries, stats.oldest_age_seconds, stats.newest_age_seconds) == (2, 6.0, 2.0)
    assert stats.hit_rate == 0.5
    clock.now = 12.0
    cache.put("c", answer("c"))  # a (stored at 0) is expired: swept although it was used recently
    assert cache.get("a") is None and cache.expirations == 1 and len(cache) == 2
    clock.now = 30.0
    cache.put("d", answer("d"))
    assert len(cache) == 1 and cache.expirations == 3
    assert cache.stats().bytes == entry_size("d", answer("d"))


@pytest.fixture()
def filled_cache(tmp_path: Path) -> Path:
    path = tmp_path / "emb.sqlite"
    with EmbeddingCache(path) as cache:
        cache.encode(["a", "b"], "m", 4, lambda texts: np.ones((len(texts), 4), np.float32))
        cache.encode(["a"], "m", 4, lambda texts: np.ones((len(texts), 4), np.float32))
    return path


def test_cache_stats_endpoint_shows_both_caches(
    pipeline: Pipeline, settings: Settings, filled_cache: Path, tmp_path: Path
) -> None:
    configured = Settings.model_validate(
        {**settings.model_dump(), "embedding_cache": str(filled_cache), "cache_max_bytes": 100_000}
    )
    with TestClient(create_app(configured, pipeline)) as client:
        ready(client)
        question = {"question": "What do roots absorb?"}
        client.post("/answer", json=question)
        client.post("/answer", json=question)
        stats = client.get("/cache/stats").json()
    assert stats["size"] == 1 and stats["hits"] == 1 and stats["hit_rate"] == 0.5
    assert 0 < stats["bytes"] <= stats["max_bytes"] == 100_000
    assert stats["oldest_age_seconds"] is not None and stats["newest_age_seconds"] is not None
    embedding = stats["embedding"]
    assert embedding["entries"] == 2 and embedding["bytes"] == 2 * (16 + 32)
    assert embedding["hits"] == 1 and embedding["misses"] == 2 and embedding["error"] is None
    assert embedding["oldest"] <= embedding["newest"]

    missing = Settings.model_validate({**settings.model_dump(), "embedding_cache": str(tmp_path / "none")})
    with TestClient(create_app(missing, pipeline)) as client:
        body = client.get("/cache/stats").json()
    assert body["embedding"]["entries"] == 0 and "no such file" in body["embedding"]["error"]
    (tmp_path / "junk").write_text("not sqlite")
    junk = Settings.model_validate({**settings.model_dump(), "embedding_cache": str(tmp_path / "junk")})
    with TestClient(create_app(junk, pipeline)) as client:
        response = client.get("/cache/stats")
    assert (
        response.status_code == 200
        and "not a readable embedding cache" in response.json()["embedding"]["error"]
    )


def test_cache_stats_without_an_embedding_cache(pipeline: Pipeline, settings: Settings) -> None:
    with TestClient(create_app(settings, pipeline)) as client:
        assert client.get("/cache/stats").json()["embedding"] is None
