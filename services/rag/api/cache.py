"""A bounded, per-worker answer cache: LRU with a TTL, keyed to the bundle it was computed from.

Bounded twice: at most `capacity` answers and `max_bytes` of them (an answer's size is its JSON, which grows
with the evidence it quotes); past either bound the least recently used go. Expired entries are dropped when
met and, so they do not hold memory, swept from the LRU end on every put.
"""

from __future__ import annotations

import hashlib
import json
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..pipeline import Answer

__all__ = ["AnswerCache", "AnswerCacheStats", "cache_key", "normalise_question"]


def normalise_question(question: str) -> str:
    """Questions that differ only in case, Unicode form or spacing share an entry."""
    return " ".join(unicodedata.normalize("NFKC", question).casefold().split())


def cache_key(corpus_id: str, question: str, params: dict[str, Any], filters: dict[str, Any] | None) -> str:
    material = json.dumps(
        [corpus_id, normalise_question(question), params, filters], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class _Entry:
    answer: Answer
    stored: float
    bytes: int


@dataclass(frozen=True)
class AnswerCacheStats:
    entries: int
    bytes: int
    oldest_age_seconds: float | None  # of entries stored (not of last use)
    newest_age_seconds: float | None
    hits: int
    misses: int
    evictions: int  # LRU, past a bound
    expirations: int  # past the TTL

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


class AnswerCache:
    """Not thread-safe on purpose: only the event loop touches it."""

    def __init__(
        self,
        capacity: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 64 * 1024**2,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.bytes = 0
        self.corpus_id: str | None = None
        self.hits = self.misses = self.evictions = self.expirations = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def __len__(self) -> int:
        return len(self._entries)

    def bind(self, corpus_id: str) -> None:
        """Serve answers of this bundle only; everything cached for another bundle is dropped."""
        if corpus_id != self.corpus_id:
            self.purge()
            self.corpus_id = corpus_id

    def get(self, key: str) -> tuple[Answer, float] | None:
        """(answer, age in seconds), or None (a miss, counted)."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now - entry.stored > self.ttl:
            self._drop(key)
            self.expirations += 1
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.answer, now - entry.stored

    def put(self, key: str, answer: Answer) -> None:
        if not self.enabled:
            return
        size = len(key) + len(answer.model_dump_json())
        if size > self.max_bytes:  # would evict everything else and still not fit
            return
        now = self._clock()
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(answer, now, size)
        self.bytes += size
        # Sweep expired entries off the LRU end first (the least recently used are the likeliest expired, and
        # an expired one would never be served; ones further in are dropped when `get` meets them), then
        # evict past the bounds.
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if now - oldest.stored <= self.ttl:
                break
            self._drop(oldest_key)
            self.expirations += 1
        while len(self._entries) > self.capacity or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.evictions += 1

    def _drop(self, key: str) -> None:
        self.bytes -= self._entries.pop(key).bytes

    def purge(self) -> int:
        dropped = len(self._entries)
        self._entries.clear()
        self.bytes = 0
        return dropped

    def stats(self) -> AnswerCacheStats:
        now = self._clock()
        stored = [entry.stored for entry in self._entries.values()]
        return AnswerCacheStats(
            entries=len(self._entries),
            bytes=self.bytes,
            oldest_age_seconds=round(now - min(stored), 3) if stored else None,
            newest_age_seconds=round(now - max(stored), 3) if stored else None,
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
            expirations=self.expirations,
        )
