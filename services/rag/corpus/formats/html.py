"""Web pages (`.html`, `.htm`): the main content only, found by trafilatura, laid out from its XML.

trafilatura drops navigation, sidebars, footers, cookie banners and comments, and keeps headings, lists,
definition lists, code and tables (`main_content.py` lays them out). Its rules were made for news pages;
`page_repairs.py` first mends what they did to documentation (permalink marks, headings and whole sections
deleted as navigation, pages without an `<article>` read without their headings). A page with no main
content is skipped with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..documents import PROSE, Document, LoadReport
from ..scripts import count_words
from .base import Limits, TextLayout, Unreadable, decode_text
from .main_content import main_content_layout
from .page_repairs import repair_page

__all__ = ["load_html"]

# On a page of links only, trafilatura falls back to their words ("Home About"): main content has at least
# one paragraph, list item or table of this many words (a page may be one table: a list of contributors).
_MIN_WORDS = 5
_CONTENT = PROSE | {"table"}


# Where a page names its encoding: <meta charset>, <meta http-equiv content="…; charset=…">, or an XHTML
# page's XML declaration. Browsers look in the first 1,024 bytes; a long <head> can push it further.
_DECLARED = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)"""
    rb"""|<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""",
    re.IGNORECASE,
)


def _declared_charset(raw: bytes) -> str | None:
    """The encoding a page declares in its first 4 KiB, if any."""
    match = _DECLARED.search(raw[:4096])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii")


def load_html(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    import trafilatura

    raw = path.read_bytes()
    tree = trafilatura.load_html(decode_text(raw, source, report, declared=_declared_charset(raw)))
    if tree is None:
        raise Unreadable("not an HTML page")
    repair_page(tree)
    metadata = trafilatura.extract_metadata(tree)
    main = trafilatura.extract(
        tree,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        deduplicate=False,
    )
    layout, heading = main_content_layout(main) if main else (TextLayout(), "")
    title = (metadata.title if metadata is not None else None) or heading or path.stem
    doc = layout.document(source, title, {"source": source})
    if not any(
        b.kind in _CONTENT and count_words(doc.text[b.start : b.end]) >= _MIN_WORDS for b in doc.blocks
    ):
        raise Unreadable("no main content found (navigation or boilerplate only)")
    yield doc
