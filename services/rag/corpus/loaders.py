"""Corpus loading: a folder (or a single file) of documents in the formats of `formats/` (text, Markdown,
HTML, PDF, DOCX, JSON Lines incl. BEIR corpus.jsonl).

Defined behaviour for awkward input, so a build never stops on a bad file:
- a file its loader cannot read (encrypted or image-only PDF, corrupt DOCX, a page with no main content, binary
  bytes behind a text extension), an empty file and a file over `max_file_bytes` (a `.jsonl` collection
  excepted: its records are documents) are skipped, with the reason
  recorded (the manifest's warnings, `rag build`'s output); the rest of the corpus builds;
- records with no text are skipped with a warning; text in other encodings is read as `formats/base.py`'s
  `decode_text` says, with a warning where it had to guess or replace;
- documents above `max_document_chars` are skipped with a warning (raise the limit to keep them);
- a BEIR dataset folder (corpus.jsonl beside queries.jsonl) is its corpus.jsonl: its queries, qrels and any
  other file are an evaluation set (`rag eval --eval-set` reads the same folder), and indexing the queries as
  documents would answer each question with itself;
- a duplicate id with the same content is dropped with a warning; with different content it is an error.
Files are read in sorted path order so the same folder always yields the same corpus.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..errors import CorpusError
from .documents import Document, LoadReport
from .formats import LOADERS, SUPPORTED_SUFFIXES, Limits, Unreadable
from .formats.base import over_limit
from .formats.text import load_text

__all__ = ["SUPPORTED_SUFFIXES", "Limits", "load_corpus"]

BEIR_CORPUS, BEIR_QUERIES = "corpus.jsonl", "queries.jsonl"
# Files that are collections of documents, read a record at a time: their records are held to the document
# limit, not the file to the file limit.
_COLLECTIONS = frozenset((".jsonl",))
_TYPES_SHOWN = 8  # /usr/share/doc holds 101 types: the warning names the most common


def _file_documents(path: Path, source: str, report: LoadReport, limits: Limits) -> list[Document]:
    """The file's documents; `Unreadable` (from its loader, or here) when it is to be skipped."""
    size = path.stat().st_size
    if size == 0:
        raise Unreadable("empty file")
    if size > limits.max_file_bytes and path.suffix.lower() not in _COLLECTIONS:
        raise Unreadable(over_limit(size, "bytes", limits.max_file_bytes, "RAG_MAX_FILE_BYTES"))
    load = LOADERS.get(path.suffix.lower(), load_text)  # a single file named by the user: read as text
    return list(load(path, source, report, limits))


def _files(root: Path, report: LoadReport, confined: bool) -> list[Path]:
    """The corpus files under `root`, sorted. Unreadable folders and files of other types are passed over and
    said in the report (files of other types in one line counting each type); `confined`, a file whose real
    path leaves the corpus (a symbolic link out of it) is skipped too, so a corpus folder cannot pull in files
    from elsewhere on the machine."""
    if root.is_file():
        if confined and root.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise CorpusError(f"{root.name}: not a supported file type ({', '.join(SUPPORTED_SUFFIXES)})")
        return [root]
    real_root = root.resolve()
    found = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "?"
        report.skip(where, f"cannot be read ({exc.strerror or exc})")

    other_types: Counter[str] = Counter()
    for folder, subfolders, names in os.walk(root, onerror=unreadable):  # linked folders: not followed
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            path = Path(folder) / name
            if name.startswith("."):
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                other_types[path.suffix.lower() or "(no extension)"] += 1
                continue
            if confined and not path.resolve().is_relative_to(real_root):
                report.skip(path.relative_to(root).as_posix(), "a link to a file outside the corpus")
                continue
            if path.is_file():
                found.append(path)
    if other_types:  # one line, not one per file: a folder may hold many images or sources beside its text
        common = sorted(other_types.items(), key=lambda item: (-item[1], item[0]))
        kinds = ", ".join(f"{suffix} ×{n}" for suffix, n in common[:_TYPES_SHOWN])
        if len(common) > _TYPES_SHOWN:
            kinds += f" and {len(common) - _TYPES_SHOWN} other types"
        report.warnings.append(
            f"passed over {other_types.total()} file(s) of types not read: {kinds} "
            f"(read: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    return sorted(found)


def load_corpus(
    root: str | Path,
    *,
    max_document_chars: int = 10_000_000,
    confined: bool = False,
    limits: Limits | None = None,
) -> tuple[list[Document], LoadReport]:
    """Documents of a corpus folder or file, and a report of what was skipped or repaired.

    `confined` is for corpora named by someone other than the machine's user (ingestion jobs): only the
    supported file types, and nothing a symbolic link leads to outside the corpus. `rag build` reads what its
    user points it at, links included, and says what it skipped. `limits`: bytes and pages per file.
    """
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"corpus not found: {root}")
    report = LoadReport()
    documents: dict[str, Document] = {}
    base = root if root.is_dir() else root.parent
    files = _files(root, report, confined)
    if root.is_dir() and _is_beir_dataset(root):
        files = _beir_corpus(files, root, report)
    for path in files:
        source = path.relative_to(base).as_posix()
        try:
            parsed = _file_documents(path, source, report, limits or Limits())
        except Unreadable as exc:
            report.skip(source, str(exc))
            continue
        except OSError as exc:
            report.skip(source, f"cannot be read ({exc.strerror or exc})")
            continue
        for doc in parsed:
            if _keep(doc, source, report, max_document_chars):
                _add(documents, doc, source, report)
    if not documents:  # what was passed over is the likely why: say it here, a build prints nothing else
        found = "; ".join(report.summary()[:3]) or f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        raise CorpusError(f"corpus {root} has no documents with text ({found})")
    return list(documents.values()), report


def _is_beir_dataset(folder: Path) -> bool:
    return (folder / BEIR_CORPUS).is_file() and (folder / BEIR_QUERIES).is_file()


def _beir_corpus(files: list[Path], root: Path, report: LoadReport) -> list[Path]:
    """Of a BEIR dataset folder's files, its corpus.jsonl; the others are said to be skipped, and why."""
    corpus = root / BEIR_CORPUS
    for path in files:
        if path != corpus:
            report.skip(
                path.relative_to(root).as_posix(),
                f"a BEIR dataset folder's documents are its {BEIR_CORPUS} "
                "(its queries and qrels are an eval set: rag eval --eval-set)",
            )
    return [path for path in files if path == corpus]


def _keep(doc: Document, source: str, report: LoadReport, max_document_chars: int) -> bool:
    if not doc.text.strip():
        report.skip_record(source, doc.id, "no text")
        return False
    if len(doc.text) > max_document_chars:
        report.skip_record(
            source,
            doc.id,
            over_limit(len(doc.text), "characters", max_document_chars, "RAG_MAX_DOCUMENT_CHARS"),
        )
        return False
    return True


def _add(documents: dict[str, Document], doc: Document, source: str, report: LoadReport) -> None:
    seen = documents.get(doc.id)
    if seen is None:
        documents[doc.id] = doc
    elif seen.canonical() == doc.canonical() or (seen.title, seen.text) == (doc.title, doc.text):
        report.warnings.append(f"duplicate id {doc.id!r} in {source} (same content) dropped")
    else:
        raise CorpusError(
            f"duplicate document id {doc.id!r} with different content "
            f"({seen.metadata.get('source')} and {source})"
        )
