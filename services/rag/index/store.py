"""SQLite store of documents, sentences and units — the bundle's source of verbatim text and citations."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from ..corpus import Document, Segmentation

__all__ = ["read_store", "write_store"]

_SCHEMA = """
CREATE TABLE documents (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
                        text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE sentences (row INTEGER PRIMARY KEY, doc_row INTEGER NOT NULL, idx INTEGER NOT NULL,
                        char_start INTEGER NOT NULL, char_end INTEGER NOT NULL);
CREATE TABLE units (row INTEGER PRIMARY KEY, doc_row INTEGER NOT NULL, first_sentence INTEGER NOT NULL,
                    last_sentence INTEGER NOT NULL);
"""


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
        con.execute("COMMIT")
    finally:
        con.close()


def read_store(path: Path) -> tuple[list[Document], Segmentation]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        documents = [
            Document(id=doc_id, title=title, text=text, metadata=json.loads(metadata))
            for doc_id, title, text, metadata in con.execute(
                "SELECT doc_id, title, text, metadata FROM documents ORDER BY row"
            )
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
