"""Content-addressed embedding cache: sha256(model variant, prefixed text) → float32 vector, in SQLite (WAL).

A rebuild after a small corpus change embeds only what changed; vectors are stored exactly (float32 bytes),
so a warm build writes the same bytes as a cold one.

The key covers everything that changes a vector: the text as the model sees it (passage prefix included),
the model's name, weights fingerprint, revision, dimension and max sequence length, and the backend variant
(torch fp32 vs an ONNX export, fp32 or int8: an export carries its SOURCE model's fingerprint, so without the
variant an int8 vector would be served to an fp32 build).

The cache is bounded: at most `max_entries` vectors and `max_bytes` of them; past either, the least recently
used entries (last use = last read or write, a logical clock persisted in the file) are evicted. One file
holds one "table" per model variant (`model` column), which `rag cache purge --table` drops alone.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbeddingCacheError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "CacheTableStats",
    "EmbeddingCache",
    "EmbeddingCacheError",
    "EmbeddingCacheStats",
    "embedder_namespace",
    "read_stats",
]

DEFAULT_MAX_ENTRIES = 2_000_000
DEFAULT_MAX_BYTES = 4 * 1024**3  # 2.6M MiniLM (384-d) vectors; 1.3M e5-base ones
_KEY_BYTES = 32  # sha256 digest, counted with the vector: what an entry costs beyond SQLite's overhead
_BATCH = 500  # SQLite's default host-parameter limit is 999 (older builds); stay well under
_SCHEMA = (
    "CREATE TABLE vectors (key BLOB PRIMARY KEY, model TEXT NOT NULL, dim INTEGER NOT NULL, "
    "vector BLOB NOT NULL, bytes INTEGER NOT NULL, created REAL NOT NULL, last_used INTEGER NOT NULL)"
)
_COLUMNS = ["key", "model", "dim", "vector", "bytes", "created", "last_used"]


def embedder_namespace(embedder: Any) -> str:
    """The model part of every key: one string per (model, weights, revision, backend + quantisation)."""
    identity = embedder.identity
    variant = getattr(embedder, "cache_variant", None) or type(embedder).__name__
    return (
        f"{identity.name}@{identity.revision or '-'}|{identity.fingerprint}|dim={identity.dim}"
        f"|max_len={identity.max_seq_length}|{variant}"
    )


@dataclass(frozen=True)
class CacheTableStats:
    model: str
    entries: int
    bytes: int
    oldest: float | None  # unix seconds the oldest entry was written
    newest: float | None


@dataclass(frozen=True)
class EmbeddingCacheStats:
    path: str
    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    oldest: float | None
    newest: float | None
    hits: int  # persisted across runs
    misses: int
    evictions: int
    tables: list[CacheTableStats]

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


class EmbeddingCache:
    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise EmbeddingCacheError("embedding cache bounds must be positive")
        self.path = Path(path)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise EmbeddingCacheError(f"{self.path}: not a usable embedding cache ({exc})") from None
        self._tick = int(self._con.execute("SELECT COALESCE(MAX(last_used), 0) FROM vectors").fetchone()[0])
        # This run's counts (what `rag build` reports); the persisted totals are in `stats()`.
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def _migrate(self) -> None:
        columns = [row[1] for row in self._con.execute("PRAGMA table_info(vectors)")]
        if columns != _COLUMNS:
            # An older layout keyed vectors without the backend variant: its entries cannot be trusted, and a
            # cache may always be dropped (it only costs a cold build).
            self._con.execute("DROP TABLE IF EXISTS vectors")
            self._con.execute(_SCHEMA)
        self._con.execute("CREATE INDEX IF NOT EXISTS vectors_lru ON vectors (last_used)")
        # covers `stats()` (per-table counts, bytes, oldest/newest) without reading the vectors' pages
        self._con.execute("CREATE INDEX IF NOT EXISTS vectors_stats ON vectors (model, created, bytes)")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self._totals()

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def key(namespace: str, text: str) -> bytes:
        return hashlib.sha256(f"{namespace}\x00{text}".encode()).digest()

    # ---- the build path ------------------------------------------------------------------------------

    def encode(
        self,
        texts: list[str],
        namespace: str,
        dim: int,
        compute: Callable[[list[str]], np.ndarray],
        *,
        prefix: str = "",
    ) -> np.ndarray:
        """float32 [len(texts), dim]: cached vectors where present, `compute` for the rest (stored after).

        `prefix` is the text the model puts before each one (the passage prefix): part of the key, since the
        model sees `prefix + text`. `compute` gets the texts without it, as `EmbeddingModel.encode` expects.
        """
        keys = [self.key(namespace, prefix + t) for t in texts]
        found = self._lookup(keys, dim)
        missing: dict[bytes, int] = {}  # key → first position: a text repeated is embedded once
        for i, k in enumerate(keys):
            if k not in found and k not in missing:
                missing[k] = i
        # A miss is a text embedded now; a repeat of one in the same call counts as a hit (not embedded again).
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        self._tick += 1
        now = self._clock()
        if missing:
            positions = list(missing.values())
            vectors = np.asarray(compute([texts[i] for i in positions]), dtype=np.float32)
            if vectors.shape != (len(positions), dim):
                raise EmbeddingCacheError(
                    f"the embedder gave shape {vectors.shape}, expected ({len(positions)}, {dim})"
                )
            found.update((keys[i], vectors[j]) for j, i in enumerate(positions))
        self._record(found, missing, namespace, dim, now, hits=len(texts) - len(missing))
        out = np.empty((len(texts), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def uncached(self, texts: list[str], namespace: str, dim: int, *, prefix: str = "") -> list[int]:
        """Positions of the texts `encode` would compute now, each text's first (ascending). No vector is
        read: a Ray build asks this before dispatch, and a rebuild's hits would otherwise all be in memory."""
        keys = [self.key(namespace, prefix + t) for t in texts]
        cached: set[bytes] = {key for (key,) in self._stored(keys, dim, "key")}
        positions = []
        for i, k in enumerate(keys):
            if k not in cached:
                cached.add(k)  # a repeat is embedded once
                positions.append(i)
        return positions

    def _lookup(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        return {k: np.frombuffer(v, dtype=np.float32) for k, v in self._stored(keys, dim, "key, vector")}

    def _stored(self, keys: list[bytes], dim: int, columns: str) -> Iterator[tuple[Any, ...]]:
        """`columns` of the stored rows among `keys`, queried in batches under SQLite's variable limit."""
        for batch in _batches(sorted(set(keys))):
            yield from self._con.execute(
                f"SELECT {columns} FROM vectors WHERE dim = ? AND key IN ({','.join('?' * len(batch))})",
                [dim, *batch],
            ).fetchall()

    def _record(
        self,
        found: dict[bytes, np.ndarray],
        missing: dict[bytes, int],
        namespace: str,
        dim: int,
        now: float,
        hits: int,
    ) -> None:
        """In one transaction: hits marked used, new vectors stored, counters added, the bounds enforced."""
        hit_keys = [k for k in found if k not in missing]
        self._con.execute("BEGIN IMMEDIATE")
        try:
            for batch in _batches(hit_keys):
                self._con.execute(
                    f"UPDATE vectors SET last_used = ? WHERE key IN ({','.join('?' * len(batch))})",
                    [self._tick, *batch],
                )
            # OR IGNORE: another build on this file may have stored the same vector meanwhile (identical bytes)
            inserted = self._con.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?,?,?,?,?,?,?)",
                (
                    (k, namespace, dim, blob, len(blob) + _KEY_BYTES, now, self._tick)
                    for k in missing
                    for blob in (found[k].tobytes(),)
                ),
            )
            self._count("entries", max(inserted.rowcount, 0))
            self._count("bytes", max(inserted.rowcount, 0) * (dim * 4 + _KEY_BYTES))
            self._count("hits", hits)
            self._count("misses", len(missing))
            self._evict()
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def _count(self, name: str, value: int) -> None:
        if value:
            self._con.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, value),
            )

    def _evict(self) -> None:
        """Drop least recently used entries until both bounds hold (inside the caller's transaction)."""
        entries, total = self._totals()
        if entries <= self.max_entries and total <= self.max_bytes:
            return
        victims: list[bytes] = []
        freed = 0
        for key, size in self._con.execute("SELECT key, bytes FROM vectors ORDER BY last_used, rowid"):
            if entries - len(victims) <= self.max_entries and total - freed <= self.max_bytes:
                break
            victims.append(key)
            freed += size
        for batch in _batches(victims):
            self._con.execute(f"DELETE FROM vectors WHERE key IN ({','.join('?' * len(batch))})", batch)
        self._count("evictions", len(victims))
        self._count("entries", -len(victims))
        self._count("bytes", -freed)
        self.evictions += len(victims)

    def _totals(self) -> tuple[int, int]:
        """(entries, bytes), kept as counters: a COUNT/SUM over a multi-GB table on every write would read it
        all. Initialised from the table once (a new or migrated file)."""
        counters = dict(
            self._con.execute("SELECT name, value FROM counters WHERE name IN ('entries', 'bytes')")
        )
        if len(counters) < 2:
            entries, size = self._con.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM vectors"
            ).fetchone()
            self._con.executemany(
                "INSERT OR REPLACE INTO counters VALUES (?, ?)", [("entries", entries), ("bytes", size)]
            )
            return int(entries), int(size)
        return int(counters["entries"]), int(counters["bytes"])

    # ---- operations ------------------------------------------------------------------------------------

    def stats(self) -> EmbeddingCacheStats:
        return _stats(self._con, self.path, self.max_entries, self.max_bytes)

    def purge(self, table: str | None = None) -> int:
        """Drop every entry (and the counters), or one model's table; how many entries went."""
        self._con.execute("BEGIN IMMEDIATE")
        if table is None:
            dropped = self._con.execute("DELETE FROM vectors").rowcount
            self._con.execute("DELETE FROM counters")
        else:
            dropped, freed = self._con.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM vectors WHERE model = ?", (table,)
            ).fetchone()
            self._con.execute("DELETE FROM vectors WHERE model = ?", (table,))
            self._count("entries", -dropped)
            self._count("bytes", -freed)
        self._con.execute("COMMIT")
        self._totals()  # re-initialised (to zero) after a full purge
        self._con.execute("VACUUM")  # give the disk back now: a purge is usually about space
        return int(dropped)


def read_stats(path: Path, max_entries: int, max_bytes: int) -> EmbeddingCacheStats:
    """Stats of a cache file, opened read-only (a server looking at the cache its node's builds fill: it must
    neither create nor migrate the file)."""
    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.DatabaseError as exc:
        raise EmbeddingCacheError(f"{path}: cannot be opened ({exc})") from None
    try:
        return _stats(con, Path(path), max_entries, max_bytes)
    except sqlite3.DatabaseError as exc:
        raise EmbeddingCacheError(f"{path}: not a readable embedding cache ({exc})") from None
    finally:
        con.close()


def _stats(con: sqlite3.Connection, path: Path, max_entries: int, max_bytes: int) -> EmbeddingCacheStats:
    tables = [
        CacheTableStats(model, n, size, oldest, newest)
        for model, n, size, oldest, newest in con.execute(
            "SELECT model, COUNT(*), SUM(bytes), MIN(created), MAX(created) FROM vectors "
            "GROUP BY model ORDER BY model"
        )
    ]
    counters = dict(con.execute("SELECT name, value FROM counters").fetchall())
    return EmbeddingCacheStats(
        path=str(path),
        entries=sum(t.entries for t in tables),
        bytes=sum(t.bytes for t in tables),
        max_entries=max_entries,
        max_bytes=max_bytes,
        oldest=min((t.oldest for t in tables if t.oldest is not None), default=None),
        newest=max((t.newest for t in tables if t.newest is not None), default=None),
        hits=int(counters.get("hits", 0)),
        misses=int(counters.get("misses", 0)),
        evictions=int(counters.get("evictions", 0)),
        tables=tables,
    )


def _batches(items: list[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]
