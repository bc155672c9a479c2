"""JSON Lines (`.jsonl`): one document per line, `{"id" | "_id", "title"?, "text", "metadata"?}` (BEIR's
corpus.jsonl reads as is). A malformed line fails the build naming the line: the file is data someone wrote
for this, not a document to skip.

The file is a collection, read one line at a time: its records are documents, each held to
`RAG_MAX_DOCUMENT_CHARS`, and the file is not held to `RAG_MAX_FILE_BYTES` (a BEIR corpus runs to gigabytes).
Lines end at "\\n" only (`rag.jsonlines`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import CorpusError
from ...jsonlines import numbered_lines
from ..documents import Document, LoadReport
from .base import Limits, LineDecoder, Unreadable, decode_text, wide_unicode

__all__ = ["load_jsonl"]

_PROBE = 8192  # bytes looked at for a byte-order mark and for NUL bytes (a binary file)


def load_jsonl(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    with path.open("rb") as handle:
        head = handle.read(_PROBE)
        decode = LineDecoder()
        if wide_unicode(head):  # UTF-16 or -32: decoded whole, as a text file is
            lines = numbered_lines(decode_text(head + handle.read(), source, report))
        elif b"\x00" in head:
            raise Unreadable("binary content (NUL bytes), not text")
        else:
            handle.seek(0)
            lines = numbered_lines(decode(raw) for raw in handle)
        for number, line in lines:
            yield _record(line, f"{source}:{number}", source)
        report.warnings.extend(decode.warnings(source))


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
