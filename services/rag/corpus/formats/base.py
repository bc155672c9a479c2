"""What every file loader shares: the limits it honours, how it refuses a file, and how it lays out text.

A loader turns one file into documents. It raises `Unreadable` for a file it cannot read (the build skips the
file with that reason, and goes on); it never lets a parser's own exception out.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..documents import Block, BlockKind, Document, LoadReport
from ..scripts import count_words, joins_without_space

__all__ = [
    "LABEL_LEVEL",
    "TERM_LEVEL",
    "Limits",
    "LineDecoder",
    "Loader",
    "TextLayout",
    "Unreadable",
    "decode_text",
    "is_label",
    "over_limit",
    "wide_unicode",
]


class Unreadable(Exception):
    """This file is skipped, for the reason given (recorded in the manifest and shown by `rag build`)."""


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 200 * 1024**2
    max_pages: int = 2000


def over_limit(amount: int, unit: str, limit: int, setting: str) -> str:
    """Why a file or document was skipped for its size, naming the setting that would keep it."""
    return f"{amount:,} {unit}, more than the limit of {limit:,} ({setting})"


class Loader(Protocol):
    """Reads one file (`source`: its name in the corpus) into documents, warnings into `report`."""

    def __call__(self, path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]: ...


# Byte-order marks, longest first (UTF-32's LE mark begins with UTF-16's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
# What a browser assumes of an unlabelled page that is not UTF-8 (the WHATWG Encoding Standard's fallback for
# Western locales). Detectors guess wrong on short Western text (charset-normalizer read "très" in cp1252 as
# cp1250 "trčs" here), so none is used.
_LEGACY_FALLBACK = "windows-1252"


def decode_text(raw: bytes, source: str, report: LoadReport, declared: str | None = None) -> str:
    """The file's text: by its byte-order mark (UTF-8, -16, -32); else as UTF-8; else in the encoding the file
    declares (`declared`: an HTML page's charset); else, when no character in it is multi-byte UTF-8, as
    windows-1252, said in a warning; else as UTF-8 with the invalid bytes replaced and counted in a warning.
    NUL bytes outside UTF-16/32 mean a binary file behind a text extension, refused rather than indexed."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding, errors="replace")
    if b"\x00" in raw[:8192]:
        raise Unreadable("binary content (NUL bytes), not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = _codec(declared) if declared is not None else None
    if codec is not None and codec != "utf-8":
        # as browsers do: pages labelled Latin-1 or ASCII are windows-1252 (curly quotes, dashes in 0x80-0x9f)
        return raw.decode(_LEGACY_FALLBACK if codec in ("iso8859-1", "ascii") else codec, errors="replace")
    text, replaced = _not_utf8(raw)
    if replaced is None:
        report.warnings.append(f"{source}: not UTF-8 and no encoding declared: read as {_LEGACY_FALLBACK}")
    else:
        report.warnings.append(f"{source}: {replaced} invalid UTF-8 byte(s) replaced")
    return text


def _not_utf8(raw: bytes) -> tuple[str, int | None]:
    """Bytes that do not decode as UTF-8: windows-1252 when nothing in them is multi-byte UTF-8 (a legacy
    single-byte encoding; None replaced), else UTF-8 with the invalid bytes replaced (and how many)."""
    if _UTF8_MULTIBYTE.search(raw) is None:
        return raw.decode(_LEGACY_FALLBACK, errors="replace"), None
    text = raw.decode("utf-8", errors="replace")
    return text, text.count(chr(0xFFFD))


class LineDecoder:
    """A file's lines decoded one at a time, as `decode_text` decodes a whole file: UTF-8 (its byte-order mark
    dropped); a line that is not UTF-8 is windows-1252 when nothing in it is multi-byte UTF-8, else UTF-8 with
    its invalid bytes replaced. Each repair is counted, for one warning per file (`warnings`)."""

    def __init__(self) -> None:
        self.legacy_lines = 0
        self.replaced_bytes = 0
        self._first = True

    def __call__(self, raw: bytes) -> str:
        if self._first:
            raw, self._first = raw.removeprefix(codecs.BOM_UTF8), False
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        text, replaced = _not_utf8(raw)
        if replaced is None:
            self.legacy_lines += 1
        else:
            self.replaced_bytes += replaced
        return text

    def warnings(self, source: str) -> list[str]:
        out = []
        if self.legacy_lines:
            out.append(f"{source}: {self.legacy_lines} line(s) not UTF-8: read as {_LEGACY_FALLBACK}")
        if self.replaced_bytes:
            out.append(f"{source}: {self.replaced_bytes} invalid UTF-8 byte(s) replaced")
        return out


def wide_unicode(head: bytes) -> bool:
    """The file begins with a UTF-16 or UTF-32 byte-order mark: its lines are not split at the byte b"\n"."""
    return any(head.startswith(bom) for bom, encoding in _BOMS if encoding != "utf-8")


def _codec(name: str) -> str | None:
    """The codec's canonical name, or None for a name Python does not know."""
    try:
        return codecs.lookup(name).name.replace("_", "-")
    except LookupError:
        return None


# Heading levels below every HTML and Markdown heading: a defined term (an HTML <dt>: a function's signature in
# an API reference, a glossary's word) heads its definition; a label ("What the numbers say:") heads what it
# introduces, within the term or section it is in.
TERM_LEVEL, LABEL_LEVEL = 7, 8


def is_label(text: str) -> bool:
    """A short line ending in a colon, standing as its own paragraph: it introduces what follows and answers
    nothing, so it is laid out as a heading."""
    text = text.strip()
    return text.endswith((":", "：")) and "\n" not in text and count_words(text) <= 12


@dataclass
class TextLayout:
    """Builds a document's stored text block by block, so each block's offsets are exact by construction.

    Blocks are separated by a blank line; headings set the section path of what follows; `new_page()` marks
    that the text written next begins a page."""

    parts: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    page_starts: list[int] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)  # (level, text) above the current block
    length: int = 0
    _page_pending: bool = False

    def add(self, text: str, kind: BlockKind, level: int = 0) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self._append("\n\n")
        start = self._begin()
        self._append(text)
        if kind == "heading":
            self.headings = [h for h in self.headings if h[0] < level] + [(level, " ".join(text.split()))]
        self.blocks.append(Block(start, self.length, kind, self.section()))

    def extend(self, text: str) -> None:
        """Continue the last block (a paragraph running on over a page break)."""
        text = text.strip()
        if not self.blocks or not text:
            return self.add(text, "paragraph")
        self._append("" if joins_without_space(self.parts[-1], text) else " ")
        self._begin()
        self._append(text)
        last = self.blocks[-1]
        self.blocks[-1] = Block(last.start, self.length, last.kind, last.section)

    def new_page(self) -> None:
        if self._page_pending:  # the previous page had no text: it begins where this one does
            self.page_starts.append(-1)
        self._page_pending = True

    def section(self) -> str:
        return " › ".join(text for _, text in self.headings)

    def text_of(self, block: Block) -> str:
        """One block's text. It joins the whole text: call it once, not per block."""
        return "".join(self.parts)[block.start : block.end]

    @property
    def last_kind(self) -> str | None:
        return self.blocks[-1].kind if self.blocks else None

    def document(self, doc_id: str, title: str, metadata: dict[str, object]) -> Document:
        text = "".join(self.parts)
        if self._page_pending:
            self.page_starts.append(len(text))
        pages: list[int] = []
        for start in reversed(self.page_starts):  # an empty page begins where the next one does
            pages.append(start if start >= 0 else (pages[-1] if pages else len(text)))
        return Document(doc_id, title, text, dict(metadata), tuple(self.blocks), tuple(reversed(pages)))

    def _begin(self) -> int:
        if self._page_pending:
            self.page_starts.append(self.length)
            self._page_pending = False
        return self.length

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)
