"""Documents in the formats users have, rendered from known paragraphs, with where each piece landed.

`render_pdf` flows paragraphs over A4 pages with a running header, a running footer and page numbers, and
returns the page of every fragment the renderer placed (a paragraph split by a page break is two fragments),
so a test can check the page a loader gives each sentence against the renderer's own record.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Placed", "page_of", "render_docx", "render_html", "render_pdf"]

BOILERPLATE_WORDS = ("Subscribe", "cookies", "Copyright", "Sitemap", "Trending")


@dataclass(frozen=True)
class Placed:
    page: int
    paragraph: int  # index into the paragraphs given
    text: str  # this fragment's text, white space collapsed


def _squash(text: str) -> str:
    return " ".join(text.split())


def render_pdf(
    path: Path,
    title: str,
    paragraphs: list[str],
    header: str = "Field Guide — internal",
    one_per_page: bool = False,
) -> list[Placed]:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.platypus import BaseDocTemplate, Frame, PageBreak, PageTemplate, Paragraph

    placed: list[Placed] = []
    styles = getSampleStyleSheet()
    font = _unicode_font()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName=font)
    heading = ParagraphStyle("heading", parent=styles["Heading1"], fontName=font)

    def running(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(72, A4[1] - 40, header)
        canvas.drawRightString(A4[0] - 72, 30, f"Page {doc.page}")
        canvas.drawString(72, 30, "Confidential. Do not distribute.")
        canvas.restoreState()

    class Document(BaseDocTemplate):
        def afterFlowable(self, flowable) -> None:
            index = getattr(flowable, "rag_index", None)
            if index is not None:
                placed.append(Placed(self.page, index, _laid_out_text(flowable)))

    doc = Document(str(path), pagesize=A4, title=title)
    doc.addPageTemplates([PageTemplate(frames=[Frame(72, 72, A4[0] - 144, A4[1] - 144)], onPage=running)])
    tracked = _tracked_paragraph()
    story = [Paragraph(html.escape(title), heading)]
    for i, text in enumerate(paragraphs):
        flowable = tracked(html.escape(text), body)
        flowable.rag_index = i
        story += [flowable, PageBreak()] if one_per_page and i < len(paragraphs) - 1 else [flowable]
    doc.build(story)
    return placed


def _unicode_font() -> str:
    """DejaVu Sans (Debian's fonts-dejavu-core), so text beyond Latin-1 (–, ł, π) is drawn, not dropped."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    from .tools import require_packages

    path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not path.exists():
        require_packages("fonts-dejavu-core")
    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(path)))
    return "DejaVuSans"


def _laid_out_text(flowable: object) -> str:
    """The words a placed paragraph (or part of one) shows, from its laid-out lines: a part made by a page
    break has no plain text of its own."""
    lines = getattr(getattr(flowable, "blPara", None), "lines", None)
    if lines is None:
        return _squash(flowable.getPlainText())  # type: ignore[attr-defined]
    words: list[str] = []
    for line in lines:
        words += line[1] if isinstance(line, tuple) else [frag.text for frag in line.words]
    return _squash(" ".join(words))


def _tracked_paragraph() -> type:
    """A Paragraph whose parts, when a page break splits it, keep the original's paragraph index."""
    from reportlab.platypus import Paragraph

    class Tracked(Paragraph):
        rag_index: int | None = None

        def split(self, available_width, available_height):
            parts = super().split(available_width, available_height)
            for part in parts:
                part.rag_index = self.rag_index
            return parts

    return Tracked


def page_of(placed: list[Placed], paragraph: int, text: str, offset: int) -> int:
    """The page holding character `offset` of `text`, paragraph `paragraph` of those rendered. Counted in
    characters other than white space: the laid-out words space some quotes differently."""
    target = len(re.sub(r"\s", "", text[:offset]))
    seen = 0
    for part in (p for p in placed if p.paragraph == paragraph):
        seen += len(re.sub(r"\s", "", part.text))
        if target < seen:
            return part.page
    raise ValueError(f"offset {offset} is past paragraph {paragraph}")


def render_docx(path: Path, title: str, paragraphs: list[str], per_page: int = 4) -> list[int]:
    """A DOCX with a Title, a Heading 1, the paragraphs, a hard page break every `per_page` paragraphs and a
    table; returns each paragraph's page."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_paragraph(title, style="Title")
    document.add_heading("Overview", level=1)
    pages = []
    for i, text in enumerate(paragraphs):
        if i and i % per_page == 0:
            document.add_page_break()
        pages.append(i // per_page + 1)
        document.add_paragraph(text)
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Year", "Event"), ("1066", "Conquest")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.save(str(path))
    return pages


def render_html(path: Path, title: str, paragraphs: list[str]) -> None:
    """An article page inside realistic boilerplate: navigation, a sidebar, a cookie banner and a footer."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    links = "".join(f'<li><a href="/{w.lower()}">{w}</a></li>' for w in ("Home", "News", "Sport", "Sitemap"))
    path.write_text(
        f"""<!doctype html><html><head><title>{html.escape(title)} | The Daily Example</title>
<style>.nav {{ color: red }}</style><script>window.dataLayer = [];</script></head><body>
<header><nav class="nav"><ul>{links}</ul></nav><form><input placeholder="Search"></form></header>
<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies or manage settings.</div>
<aside class="sidebar"><h3>Trending</h3><ul><li><a href="/a">Ten facts about rivers</a></li>
<li><a href="/b">Subscribe to our newsletter for weekly updates</a></li></ul></aside>
<main><article><h1>{html.escape(title)}</h1>
{body}
</article></main>
<footer><p>Copyright 2026 The Daily Example Ltd. All rights reserved.</p>
<ul><li><a href="/privacy">Privacy</a></li><li><a href="/terms">Terms</a></li></ul></footer>
</body></html>""",
        encoding="utf-8",
    )


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())
