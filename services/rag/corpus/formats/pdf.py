"""PDF (`.pdf`): the text layer, read with pypdfium2 (PDFium, Chrome's PDF engine), page by page.

Lines come from PDFium's text and are grouped into paragraphs by the vertical gap between them; a paragraph cut by a page break is joined again (its page is where each sentence starts). Running
headers and footers (a line in the top or bottom band that recurs on other pages, digits aside) and page
numbers are dropped. A short line standing alone without final punctuation is a heading: context, not an
answer. Encrypted PDFs, PDFs without a text layer (scans) and PDFs over `max_pages` are skipped.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..documents import BlockKind, Document, LoadReport
from ..scripts import count_words, joins_without_space
from .base import Limits, TextLayout, Unreadable, over_limit

__all__ = ["load_pdf"]

_BAND = 0.1  # running headers and footers live in the top and bottom tenth of a page
_PAGE_NUMBER = re.compile(r"^(page\s*)?[0-9ivxlc]+(\s*(of|/)\s*[0-9]+)?$", re.IGNORECASE)
# PDFium ends a line with "\r\n", or with a hyphen mark (U+FFFE, or 0x02) and nothing else: a line whose last
# word is broken (or ends in a hyphen) runs straight on into the next in its text.
_LINE_END = re.compile(r"(.*?(?:[\ufffe\x02]|(?=\r\n)|$))(\r\n)?", re.DOTALL)
_NO_TITLE = frozenset(("(anonymous)", "untitled", "untitled document"))  # what PDF writers put by default
_ENDS_SENTENCE = re.compile(r"[.!?…:;。！？：；][\"'”’)\]」』）]*$")


@dataclass(frozen=True)
class _Line:
    top: float
    left: float
    right: float
    text: str
    band: bool  # in the top or bottom band of its page


def load_pdf(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    pages, title = _read_pages(path, limits)
    running = _running_texts(pages)
    layout = TextLayout()
    open_end, short_line = False, False  # how the previous page's text ended
    for lines in pages:
        layout.new_page()
        body = [line for line in lines if not (line.band and _shape(line.text) in running)]
        for k, (text, kind) in enumerate(_blocks(body)):
            if k == 0 and kind == "paragraph" and open_end and not (short_line and text[:1].isupper()):
                layout.extend(text)
            else:
                layout.add(text, kind, level=1)
        if body:
            open_end = layout.last_kind == "paragraph" and not _ENDS_SENTENCE.search(layout.parts[-1])
            short_line = _ends_short(body)
    if not layout.blocks:
        raise Unreadable("no text layer (a scanned or image-only PDF?)")
    heading = next((layout.text_of(b) for b in layout.blocks if b.kind == "heading"), "")
    yield layout.document(source, title or heading or path.stem, {"source": source})


def _read_pages(path: Path, limits: Limits) -> tuple[list[list[_Line]], str]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise Unreadable("encrypted (needs a password)") from None
        raise Unreadable(f"not a readable PDF ({message})") from None
    try:
        if len(pdf) > limits.max_pages:
            raise Unreadable(over_limit(len(pdf), "pages", limits.max_pages, "RAG_MAX_PAGES"))
        title = str(pdf.get_metadata_dict().get("Title") or "").strip()
        title = "" if title.lower() in _NO_TITLE else title
        return [_page_lines(pdf[i]) for i in range(len(pdf))], title
    except pdfium.PdfiumError as exc:
        raise Unreadable(f"not a readable PDF ({exc})") from None
    finally:
        pdf.close()


def _page_lines(page: Any) -> list[_Line]:
    """The page's lines, top to bottom. PDFium's text already has its lines ("\\r\\n" between them) and the
    spaces the PDF draws; a line's height is its first character's font box, the same on every line of one
    type size (glyph boxes are not: "raiders." is shorter than "Typography")."""
    height = page.get_height()
    textpage = page.get_textpage()
    count = textpage.count_chars()
    text = textpage.get_text_range(0, count) if count > 0 else ""
    lines: list[_Line] = []
    position = 0
    for raw, separator in _LINE_END.findall(text):
        content = " ".join(raw.replace("\ufffe", "-").replace("\x02", "-").split())
        first = position + len(raw) - len(raw.lstrip())
        last = position + len(raw.rstrip()) - 1
        position += len(raw) + len(separator)
        if not content or last >= count:
            continue
        left, bottom, _, top = textpage.get_charbox(first, loose=True)
        right = textpage.get_charbox(last, loose=True)[2]
        lines.append(
            _Line(top, left, right, content, band=top > height * (1 - _BAND) or bottom < height * _BAND)
        )
    textpage.close()
    page.close()
    return sorted(lines, key=lambda line: -line.top)


def _shape(text: str) -> str:
    """A line with its numbers blanked: "Page 3 of 9" and "Page 4 of 9" are one running footer."""
    return re.sub(r"\d+", "#", text.lower())


def _running_texts(pages: list[list[_Line]]) -> set[str]:
    """Shapes of header/footer lines: in the band on at least two pages and a third of them, or page numbers."""
    counts = Counter(shape for lines in pages for shape in {_shape(line.text) for line in lines if line.band})
    needed = max(2, len(pages) // 3)
    running = {shape for shape, n in counts.items() if n >= needed}
    running |= {_shape(line.text) for lines in pages for line in lines if _PAGE_NUMBER.match(line.text)}
    return running


def _blocks(lines: list[_Line]) -> Iterator[tuple[str, BlockKind]]:
    """(text, kind) of each paragraph or heading: a new one starts where the line pitch jumps. (Rectangle
    heights follow the glyphs, "raiders." is shorter than "Typography", so they cannot tell type sizes.)"""
    if not lines:
        return
    pitches = [a.top - b.top for a, b in itertools.pairwise(lines) if a.top > b.top]
    pitch = statistics.median(pitches) if pitches else 0.0
    group = [lines[0]]
    for prev, line in itertools.pairwise(lines):
        if prev.top - line.top > 1.35 * pitch:
            yield _block(group)
            group = []
        group.append(line)
    yield _block(group)


def _block(group: list[_Line]) -> tuple[str, BlockKind]:
    """A short line standing alone without final punctuation is a heading."""
    text = _joined(group)
    lone = len(group) == 1 and count_words(text) <= 12 and not _ENDS_SENTENCE.search(text)
    return text, "heading" if lone else "paragraph"


def _joined(group: list[_Line]) -> str:
    """The lines of a paragraph as one text. A line ending in a hyphen after a letter runs on into a next line
    that starts in lower case with no space: "high-" + "and" or "exam-" + "ple". Which hyphen was typed and
    which only breaks the word is not in the PDF; keeping it loses no letter either way. Chinese and Japanese
    lines run on without a space: one there would split a word ("上游版 本")."""
    text = group[0].text
    for line in group[1:]:
        hyphenated = re.search(r"[A-Za-z]-$", text) and line.text[:1].islower()
        joined = hyphenated or joins_without_space(text, line.text)
        text = f"{text}{line.text}" if joined else f"{text} {line.text}"
    return text


def _ends_short(body: list[_Line]) -> bool:
    """The page's last line stops well before the right margin, as a paragraph's last line does.

    A page that ends without final punctuation continues on the next, unless its last line is short and the
    next page starts with a capital ("[citation needed]" ending a paragraph, then "Approximately ...")."""
    margin = max(line.right for line in body)
    return body[-1].right < margin - 0.4 * (margin - min(line.left for line in body))
