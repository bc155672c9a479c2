"""SQLite store of documents, sentences and units — the bundle's source of verbatim text and citations."""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args, overload

import numpy as np

from ..corpus import Document, Segmentation
from ..corpus.documents import Block, BlockKind
from ..errors import BundleCorrupt
from .manifest import STORE_FILE

__all__ = ["StoredDocuments", "read_store", "write_store"]

_KINDS = frozenset(get_args(BlockKind))

_SCHEMA = """
CREATE TABLE documents (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
                        text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE sentences (row INTEGER PRIMARY KEY, doc_row INTEGER NOT NULL, idx INTEGER NOT NULL,
                        char_start INTEGER NOT NULL, char_end INTEGER NOT NULL);
CREATE TABLE units (row INTEGER PRIMARY KEY, doc_row INTEGER NOT NULL, first_sentence INTEGER NOT NULL,
                    last_sentence INTEGER NOT NULL);
CREATE TABLE blocks (doc_row INTEGER NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,
                     kind TEXT NOT NULL, section TEXT NOT NULL, PRIMARY KEY (doc_row, char_start));
CREATE TABLE pages (doc_row INTEGER NOT NULL, page INTEGER NOT NULL, char_start INTEGER NOT NULL,
                    PRIMARY KEY (doc_row, page));
"""
# blocks and pages: the structure read from Markdown, HTML, PDF and DOCX files. A bundle written before them
# has neither table, and its documents have no structure.


def write_store(path: Path, documents: list[Document], seg: Segmentation) -> None:
    # Plain rollback journal and one transaction: the same input gives the same file bytes.
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA page_size=4096")
        con.executescript(_SCHEMA)
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?)",
            (
                (i, d.id, d.title, d.text, json.dumps(d.metadata, ensure_ascii=False, sort_keys=True))
                for i, d in enumerate(documents)
            ),
        )
        con.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?,?)",
            zip(
                range(seg.n_sentences),
                seg.sent_doc.tolist(),
                seg.sent_idx.tolist(),
                seg.sent_start.tolist(),
                seg.sent_end.tolist(),
                strict=True,
            ),
        )
        con.executemany(
            "INSERT INTO units VALUES (?,?,?,?)",
            zip(
                range(seg.n_units),
                seg.unit_doc.tolist(),
                seg.unit_first.tolist(),
                seg.unit_last.tolist(),
                strict=True,
            ),
        )
        _write_structure(con, documents)
        con.execute("COMMIT")
    finally:
        con.close()


def _write_structure(con: sqlite3.Connection, documents: list[Document]) -> None:
    con.executemany(
        "INSERT INTO blocks VALUES (?,?,?,?,?)",
        ((i, b.start, b.end, b.kind, b.section) for i, d in enumerate(documents) for b in d.blocks),
    )
    con.executemany(
        "INSERT INTO pages VALUES (?,?,?)",
        ((i, page, start) for i, d in enumerate(documents) for page, start in enumerate(d.page_starts, 1)),
    )


class StoredDocuments(Sequence[Document]):
    """A bundle's documents, each read from the store when asked; the most recently read are kept (an LRU).

    What requests need of every document stays in memory: ids, titles and metadata (filters, lookups) and text
    lengths (the load-time checks). A worker holds no text it is not citing: loaded whole, the texts cost
    ~0.5 GB per million sentence units per process (docs/BENCHMARKS.md, "Scale")."""

    def __init__(self, path: Path, rows: list[tuple[str, str, int, str]], cache_size: int = 4096) -> None:
        self._path = path
        self.ids = [row[0] for row in rows]
        self.titles = [row[1] for row in rows]
        self.text_lengths = np.asarray([row[2] for row in rows], dtype=np.int64)
        self.metadata: list[dict[str, Any]] = [json.loads(row[3]) for row in rows]
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._structured = False
        self._cached = lru_cache(maxsize=cache_size)(self._read)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Document: ...

    @overload
    def __getitem__(self, index: slice) -> list[Document]: ...

    def __getitem__(self, index: int | slice) -> Document | list[Document]:
        if isinstance(index, slice):
            return [self._cached(i) for i in range(*index.indices(len(self)))]
        row = operator.index(index)
        if not -len(self) <= row < len(self):
            raise IndexError(f"document row {row} out of range")
        return self._cached(row % len(self))

    def _read(self, row: int) -> Document:
        with self._lock:
            con = self._open()
            (text,) = con.execute("SELECT text FROM documents WHERE row = ?", (row,)).fetchone()
            blocks, pages = _read_structure(con, row) if self._structured else ((), ())
        return Document(self.ids[row], self.titles[row], text, self.metadata[row], blocks, pages)

    def _open(self) -> sqlite3.Connection:
        # One connection per process: a worker forked from a master that loaded the bundle (preload) must
        # not share the master's SQLite handle.
        if self._connection is None or self._pid != os.getpid():
            self._connection = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False
            )
            self._pid = os.getpid()
            self._structured = _has_structure(self._connection)
        return self._connection


def _has_structure(con: sqlite3.Connection) -> bool:
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {"blocks", "pages"} <= tables


def _read_structure(con: sqlite3.Connection, row: int) -> tuple[tuple[Block, ...], tuple[int, ...]]:
    blocks = con.execute(
        "SELECT char_start, char_end, kind, section FROM blocks WHERE doc_row = ? ORDER BY char_start", (row,)
    ).fetchall()
    pages = con.execute("SELECT char_start FROM pages WHERE doc_row = ? ORDER BY page", (row,)).fetchall()
    return tuple(Block(*block) for block in blocks), tuple(start for (start,) in pages)


def _check_structure(con: sqlite3.Connection, n_documents: int) -> None:
    """Block kinds and document rows are checked once at load, as the rest of the store is."""
    if not _has_structure(con):
        return
    kinds = ",".join(f"'{kind}'" for kind in sorted(_KINDS))
    (unknown,) = con.execute(f"SELECT COUNT(*) FROM blocks WHERE kind NOT IN ({kinds})").fetchone()
    if unknown:
        raise BundleCorrupt(f"{STORE_FILE}: {unknown} block(s) of unknown kind")
    for table in ("blocks", "pages"):
        (stray,) = con.execute(
            f"SELECT COUNT(*) FROM {table} WHERE doc_row < 0 OR doc_row >= ?", (n_documents,)
        ).fetchone()
        if stray:
            raise BundleCorrupt(f"{STORE_FILE}: blocks or pages of a document that does not exist")


def _read_rows(con: sqlite3.Connection, table: str, columns: str) -> np.ndarray:
    """A table's integer columns as one array, read in slices: a list of every row as Python tuples costs
    ~10× the array, and the allocator keeps that peak after it is freed."""
    (count,) = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    out = np.empty((count, columns.count(",") + 1), dtype=np.int64)
    cursor = con.execute(f"SELECT {columns} FROM {table} ORDER BY row")
    done = 0
    while rows := cursor.fetchmany(65_536):
        if done + len(rows) > count:
            raise BundleCorrupt(f"{STORE_FILE}: {table} changed while it was read")
        out[done : done + len(rows)] = rows
        done += len(rows)
    return out[:done]


def read_store(path: Path) -> tuple[StoredDocuments, Segmentation]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT doc_id, title, length(text), metadata FROM documents ORDER BY row"
        ).fetchall()
        _check_structure(con, len(rows))
        sentences = _read_rows(con, "sentences", "doc_row, idx, char_start, char_end")
        units = _read_rows(con, "units", "doc_row, first_sentence, last_sentence")
    finally:
        con.close()
    seg = Segmentation(
        sent_doc=sentences[:, 0].astype(np.int32),
        sent_idx=sentences[:, 1].astype(np.int32),
        sent_start=sentences[:, 2],
        sent_end=sentences[:, 3],
        unit_doc=units[:, 0].astype(np.int32),
        unit_first=units[:, 1],
        unit_last=units[:, 2],
    )
    return StoredDocuments(path, rows), seg
