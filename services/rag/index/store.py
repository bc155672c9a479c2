"""SQLite store of documents, sentences and units — the bundle's source of verbatim text and citations."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import get_args

import numpy as np

from ..corpus import Document, Segmentation
from ..corpus.documents import Block, BlockKind
from ..errors import BundleCorrupt
from .manifest import STORE_FILE

__all__ = ["read_store", "write_store"]

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


def _read_structure(
    con: sqlite3.Connection, n_documents: int
) -> tuple[dict[int, list[Block]], dict[int, list[int]]]:
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    blocks: dict[int, list[Block]] = defaultdict(list)
    pages: dict[int, list[int]] = defaultdict(list)
    if "blocks" in tables:
        query = "SELECT doc_row, char_start, char_end, kind, section FROM blocks ORDER BY doc_row, char_start"
        for doc_row, start, end, kind, section in con.execute(query):
            if kind not in _KINDS:
                raise BundleCorrupt(f"{STORE_FILE}: block of unknown kind {kind!r}")
            blocks[doc_row].append(Block(start, end, kind, section))
    if "pages" in tables:
        for doc_row, start in con.execute("SELECT doc_row, char_start FROM pages ORDER BY doc_row, page"):
            pages[doc_row].append(start)
    if any(not 0 <= row < n_documents for row in (*blocks, *pages)):
        raise BundleCorrupt(f"{STORE_FILE}: blocks or pages of a document that does not exist")
    return blocks, pages


def read_store(path: Path) -> tuple[list[Document], Segmentation]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT doc_id, title, text, metadata FROM documents ORDER BY row").fetchall()
        blocks, pages = _read_structure(con, len(rows))
        documents = [
            Document(doc_id, title, text, json.loads(metadata), tuple(blocks[i]), tuple(pages[i]))
            for i, (doc_id, title, text, metadata) in enumerate(rows)
        ]
        sentences = np.asarray(
            con.execute("SELECT doc_row, idx, char_start, char_end FROM sentences ORDER BY row").fetchall(),
            dtype=np.int64,
        ).reshape(-1, 4)
        units = np.asarray(
            con.execute("SELECT doc_row, first_sentence, last_sentence FROM units ORDER BY row").fetchall(),
            dtype=np.int64,
        ).reshape(-1, 3)
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
    return documents, seg
