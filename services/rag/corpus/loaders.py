"""Corpus loaders: a folder (or a single file) of .txt, .md, .html and .jsonl (incl. BEIR corpus.jsonl).

Defined behaviour for awkward input, so a build never crashes on it:
- empty files and records with no text are skipped with a warning;
- bytes that are not UTF-8 are replaced (U+FFFD) and counted in a warning; offsets index the stored text;
- documents above `max_document_chars` are skipped with a warning (raise the limit to keep them);
- a duplicate id with the same content is dropped with a warning; with different content it is an error.
Files are read in sorted path order so the same folder always yields the same corpus.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..errors import CorpusError
from .documents import Document, LoadReport

__all__ = ["SUPPORTED_SUFFIXES", "load_corpus"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")


def _read_text(path: Path, report: LoadReport, source: str) -> str:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        report.warnings.append(f"{source}: {text.count(chr(0xFFFD))} invalid UTF-8 byte(s) replaced")
        return text


class _HtmlText(HTMLParser):
    """Text of an HTML page: tags dropped, block elements become line breaks, script/style skipped."""

    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "blockquote",
            "pre",
            "hr",
        ]
    )
    _SKIP = frozenset(("script", "style", "noscript", "template"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title_parts.append(data)
        else:
            self.parts.append(data)


def _html_document(text: str) -> tuple[str, str]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    body = "".join(parser.parts)
    body = re.sub(r"[ \t\r\f\v]+", " ", body)
    body = re.sub(r" ?\n[\n ]*", lambda m: "\n\n" if m.group(0).count("\n") > 1 else "\n", body).strip()
    return " ".join("".join(parser.title_parts).split()), body


def _markdown_title(text: str) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return match.group(1) if match else ""


def _file_documents(path: Path, source: str, report: LoadReport) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_documents(path, source, report)
        return
    text = _read_text(path, report, source)
    if suffix in (".html", ".htm"):
        title, text = _html_document(text)
    else:
        text = text.replace("\r\n", "\n")
        title = _markdown_title(text) if suffix in (".md", ".markdown") else ""
    yield Document(id=source, title=title or path.stem, text=text, metadata={"source": source})


def _jsonl_documents(path: Path, source: str, report: LoadReport) -> Iterator[Document]:
    text = _read_text(path, report, source)
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{line_no}"
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
        yield Document(
            id=str(doc_id),
            title=str(record.get("title") or ""),
            text=str(record.get("text") or ""),
            metadata={"source": source, **metadata},
        )


def _files(root: Path, report: LoadReport, confined: bool) -> list[Path]:
    """The corpus files under `root`, sorted. Unreadable folders and files of other types are passed over
    (said in the report); `confined`, a file whose real path leaves the corpus (a symbolic link out of it) is
    skipped too, so a corpus folder cannot pull in files from elsewhere on the machine."""
    if root.is_file():
        if confined and root.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise CorpusError(f"{root.name}: not a supported file type ({', '.join(SUPPORTED_SUFFIXES)})")
        return [root]
    real_root = root.resolve()
    found = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "?"
        report.skip(where, f"cannot be read ({exc.strerror or exc})")

    for folder, subfolders, names in os.walk(root, onerror=unreadable):  # linked folders: not followed
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            path = Path(folder) / name
            if name.startswith(".") or path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if confined and not path.resolve().is_relative_to(real_root):
                report.skip(path.relative_to(root).as_posix(), "a link to a file outside the corpus")
                continue
            if path.is_file():
                found.append(path)
    return sorted(found)


def load_corpus(
    root: str | Path, *, max_document_chars: int = 10_000_000, confined: bool = False
) -> tuple[list[Document], LoadReport]:
    """Documents of a corpus folder or file, and a report of what was skipped or repaired.

    `confined` is for corpora named by someone other than the machine's user (ingestion jobs): only the
    supported file types, and nothing a symbolic link leads to outside the corpus. `rag build` reads what its
    user points it at, links included, and says what it skipped.
    """
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"corpus not found: {root}")
    report = LoadReport()
    documents: dict[str, Document] = {}
    base = root if root.is_dir() else root.parent
    for path in _files(root, report, confined):
        source = path.relative_to(base).as_posix()
        try:
            empty = path.stat().st_size == 0
            parsed = list(_file_documents(path, source, report))
        except OSError as exc:
            report.skip(source, f"cannot be read ({exc.strerror or exc})")
            continue
        if empty:
            report.skip(source, "empty file")
            continue
        for doc in parsed:
            if not doc.text.strip():
                report.skip(f"{source} ({doc.id})", "no text")
                continue
            if len(doc.text) > max_document_chars:
                report.skip(
                    f"{source} ({doc.id})",
                    f"{len(doc.text):,} characters exceeds max_document_chars={max_document_chars:,}",
                )
                continue
            seen = documents.get(doc.id)
            if seen is None:
                documents[doc.id] = doc
            elif (seen.title, seen.text) == (doc.title, doc.text):
                report.warnings.append(f"duplicate id {doc.id!r} in {source} (same content) dropped")
            else:
                raise CorpusError(
                    f"duplicate document id {doc.id!r} with different content "
                    f"({seen.metadata.get('source')} and {source})"
                )
    if not documents:
        raise CorpusError(
            f"corpus {root} has no documents with text (supported: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    return list(documents.values()), report
