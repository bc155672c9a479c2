"""Plain text (`.txt`): the file's text as it is, one document, all prose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..documents import Document, LoadReport
from .base import Limits, decode_text

__all__ = ["load_text"]


def load_text(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    text = decode_text(path.read_bytes(), source, report).replace("\r\n", "\n")
    yield Document(id=source, title=path.stem, text=text, metadata={"source": source})
