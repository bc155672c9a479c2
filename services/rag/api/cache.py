"""A bounded, per-worker answer cache: LRU with a TTL, keyed to the bundle it was computed from."""

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

__all__ = ["AnswerCache", "cache_key", "normalise_question"]


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


class AnswerCache:
    """Not thread-safe on purpose: only the event loop touches it."""

    def __init__(
        self, capacity: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.corpus_id: str | None = None
        self.hits = self.misses = self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def __len__(self) -> int:
        return len(self._entries)

    def bind(self, corpus_id: str) -> None:
        """Serve answers of this bundle only; everything cached for another bundle is dropped."""
        if corpus_id != self.corpus_id:
            self._entries.clear()
            self.corpus_id = corpus_id

    def get(self, key: str) -> tuple[Answer, float] | None:
        """(answer, age in seconds), or None (a miss, counted)."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now - entry.stored > self.ttl:
            del self._entries[key]
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
        self._entries[key] = _Entry(answer, self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evictions += 1

    def purge(self) -> int:
        dropped = len(self._entries)
        self._entries.clear()
        return dropped
