"""JSON Lines (`.jsonl`): one document per line, `{"id" | "_id", "title"?, "text", "metadata"?}` (BEIR's
corpus.jsonl reads as is). A malformed line fails the build naming the line: the file is data someone wrote
for this, not a document to skip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import CorpusError
from ..documents import Document, LoadReport
from .base import Limits, decode_text

__all__ = ["load_jsonl"]


def load_jsonl(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    text = decode_text(path.read_bytes(), source, report)
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield _record(line, f"{source}:{line_no}", source)


def _record(line: str, where: str, source: str) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object per line")
    doc_id = record.get("id", record.get("_id"))
    if doc_id is None or str(doc_id).strip() == "":
        raise CorpusError(f"{where}: record has no 'id' (or BEIR '_id')")
    metadata: Any = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CorpusError(f"{where}: 'metadata' must be an object")
    return Document(
        id=str(doc_id),
        title=str(record.get("title") or ""),
        text=str(record.get("text") or ""),
        metadata={"source": source, **metadata},
    )
