"""`GET /cache/stats`: this worker's answer cache, and the node's embedding cache when one is configured."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..errors import RagError
from ..index.embedding_cache import read_stats
from .cache import AnswerCache
from .schemas import CacheStats, EmbeddingCacheBody

__all__ = ["describe_caches"]


def _iso(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds else None


def _embedding(settings: Settings) -> EmbeddingCacheBody | None:
    if not settings.embedding_cache:
        return None
    bounds = {
        "path": settings.embedding_cache,
        "max_entries": settings.embedding_cache_max_entries,
        "max_bytes": settings.embedding_cache_max_bytes,
    }
    if not Path(settings.embedding_cache).is_file():
        return EmbeddingCacheBody(**bounds, error="no such file (yet): nothing was built with it")
    try:
        stats = read_stats(
            Path(settings.embedding_cache),
            settings.embedding_cache_max_entries,
            settings.embedding_cache_max_bytes,
        )
    except RagError as exc:  # a stats page reports a broken cache; it does not fail
        return EmbeddingCacheBody(**bounds, error=str(exc))
    return EmbeddingCacheBody(
        **bounds,
        entries=stats.entries,
        bytes=stats.bytes,
        oldest=_iso(stats.oldest),
        newest=_iso(stats.newest),
        hits=stats.hits,
        misses=stats.misses,
        hit_rate=stats.hit_rate,
        evictions=stats.evictions,
    )


async def describe_caches(cache: AnswerCache, settings: Settings) -> CacheStats:
    answers = cache.stats()  # on the loop: the answer cache is only touched there
    embedding = await run_in_threadpool(_embedding, settings)  # SQLite I/O: off the loop
    return CacheStats(
        enabled=cache.enabled,
        size=answers.entries,
        capacity=cache.capacity,
        ttl_seconds=cache.ttl,
        hits=answers.hits,
        misses=answers.misses,
        evictions=answers.evictions,
        corpus_id=cache.corpus_id,
        bytes=answers.bytes,
        max_bytes=cache.max_bytes,
        oldest_age_seconds=answers.oldest_age_seconds,
        newest_age_seconds=answers.newest_age_seconds,
        hit_rate=answers.hit_rate,
        expirations=answers.expirations,
        embedding=embedding,
    )
