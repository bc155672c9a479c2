"""Web pages (`.html`, `.htm`): the main content only, found by trafilatura, then read as Markdown.

trafilatura drops navigation, sidebars, footers, cookie banners and comments, and keeps headings, lists and
tables; its Markdown output goes through the Markdown reader, so a page has the same structure as a `.md`
file. A page with no main content is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..documents import PROSE, Document, LoadReport
from .base import Limits, Unreadable, decode_text
from .markdown import markdown_layout

__all__ = ["load_html"]

# On a page of links only, trafilatura falls back to their words ("Home About"): main content has at least
# one paragraph or list item of this many words.
_MIN_WORDS = 5


def load_html(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    import trafilatura

    page = decode_text(path.read_bytes(), source, report)
    main = trafilatura.extract(
        page,
        output_format="markdown",
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        deduplicate=False,
    )
    layout, heading = markdown_layout(main or "")
    metadata = trafilatura.extract_metadata(page)
    title = (metadata.title if metadata is not None else None) or heading or path.stem
    doc = layout.document(source, title, {"source": source})
    if not any(b.kind in PROSE and len(doc.text[b.start : b.end].split()) >= _MIN_WORDS for b in doc.blocks):
        raise Unreadable("no main content found (navigation or boilerplate only)")
    yield doc
