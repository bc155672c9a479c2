"""Word (`.docx`), read with python-docx: paragraphs and tables in document order.

Heading and Title styles are headings (their level from the style), list styles and numbered paragraphs
are list items, tables are table blocks (rows of " | "-joined cells). Pages are known when the file records
them: hard page breaks and the breaks Word saves from its last layout (`lastRenderedPageBreak`); a file with
neither has no page numbers. A file that is not a valid DOCX is skipped.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..documents import Document, LoadReport
from .base import Limits, TextLayout, Unreadable

__all__ = ["load_docx"]

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING = re.compile(r"^(?:heading\s*(\d)|title)$", re.IGNORECASE)


def load_docx(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    document = _open(path)
    layout, title = TextLayout(), ""
    body = document.element.body
    paged = any(True for _ in body.iter(f"{_W}lastRenderedPageBreak")) or any(
        br.get(f"{_W}type") == "page" for br in body.iter(f"{_W}br")
    )
    if paged:
        layout.new_page()
    for element in body.iterchildren():
        if element.tag == f"{_W}p":
            heading = _paragraph(element, document, layout, paged)
            title = title or heading
        elif element.tag == f"{_W}tbl":
            _table(element, layout)
    if not layout.blocks:
        raise Unreadable("no text")
    yield layout.document(source, title or path.stem, {"source": source})


def _open(path: Path) -> Any:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        return docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise Unreadable(f"not a valid DOCX ({type(exc).__name__})") from None
    except Exception as exc:  # lxml's XMLSyntaxError and kin: a damaged part inside the archive
        raise Unreadable(f"not a valid DOCX ({type(exc).__name__}: {exc})") from None


def _paragraph(element: Any, document: Any, layout: TextLayout, paged: bool) -> str:
    """Adds the paragraph (page breaks inside it first); returns its text when it is the document's title."""
    from docx.text.paragraph import Paragraph

    paragraph = Paragraph(element, document)
    if paged and _breaks_page_before(element):
        layout.new_page()
    text = paragraph.text
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    heading = _HEADING.match(style.strip())
    if heading:
        level = int(heading.group(1)) if heading.group(1) else 0
        layout.add(text, "heading", level)
        return text.strip() if level <= 1 else ""
    listed = style.lower().startswith("list") or element.find(f"{_W}pPr/{_W}numPr") is not None
    layout.add(text, "list_item" if listed else "paragraph")
    return ""


def _breaks_page_before(element: Any) -> bool:
    hard = any(br.get(f"{_W}type") == "page" for br in element.iter(f"{_W}br"))
    rendered = any(True for _ in element.iter(f"{_W}lastRenderedPageBreak"))
    return hard or rendered


def _table(element: Any, layout: TextLayout) -> None:
    rows = []
    for row in element.iter(f"{_W}tr"):
        cells = ["".join(t.text or "" for t in cell.iter(f"{_W}t")).strip() for cell in row.iter(f"{_W}tc")]
        rows.append(" | ".join(cells))
    layout.add("\n".join(rows), "table")
