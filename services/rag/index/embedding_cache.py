"""Content-addressed embedding cache: sha256(model fingerprint, prefix, text) → float32 vector, in SQLite.

A rebuild after a small corpus change embeds only what changed; vectors are stored exactly, so a warm build
writes the same bytes as a cold one.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["EmbeddingCache"]


class EmbeddingCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, dim INTEGER, vector BLOB)"
        )
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self._con.close()

    @staticmethod
    def _key(namespace: str, text: str) -> bytes:
        return hashlib.sha256(f"{namespace}\x00{text}".encode()).digest()

    def encode(
        self, texts: list[str], namespace: str, dim: int, compute: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        keys = [self._key(namespace, t) for t in texts]
        out = np.empty((len(texts), dim), dtype=np.float32)
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            rows = self._con.execute(
                f"SELECT key, vector FROM vectors WHERE dim = ? AND key IN ({','.join('?' * len(batch))})",
                [dim, *batch],
            ).fetchall()
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = compute([texts[i] for i in missing])
            self._con.execute("BEGIN")
            self._con.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?,?,?)",
                ((keys[i], dim, vectors[j].tobytes()) for j, i in enumerate(missing)),
            )
            self._con.execute("COMMIT")
            for j, i in enumerate(missing):
                found[keys[i]] = vectors[j]
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out
