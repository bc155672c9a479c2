"""What is done to a page's tree before trafilatura reads it, so its heuristics for news pages do not throw
away documentation. Each repair was found on real pages (Python's Sphinx docs, Debian's DocBook FAQ) and
changes only what its rule names; navigation, sidebars and footers are still trafilatura's to drop.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["repair_page"]

_RUNNING_TEXT = frozenset(("p", "li", "dd", "dt", "td", "th", "blockquote"))
_WORDS_AROUND = 4  # words outside links that make a block running text, not a menu entry
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_TOKEN = re.compile(r"[^\W_]+")


def repair_page(tree: Any) -> None:
    _drop_anchor_marks(tree)
    _forget_heading_slugs(tree)
    _unlink_running_text(tree)
    _frame_the_body(tree)


def _drop_anchor_marks(tree: Any) -> None:
    """Remove links that are marks, not text: the permalink beside a heading or term (Sphinx' and MkDocs' `<a
    class="headerlink" href="#id">¶</a>`), which would end every heading, title and term in "¶"; and the
    empty target a heading holds (DocBook's `<h2><a id="x"></a>Title</h2>`), a link with no text, for which
    trafilatura's link-density pass deletes the heading's block as navigation."""
    for link in list(tree.iter("a")):
        text = link.text_content().strip()
        href = link.get("href")
        mark = (
            href is not None and href.startswith("#") and len(text) <= 2 and not any(map(str.isalnum, text))
        )
        target = href is None and not text and len(link) == 0
        if mark or target:
            link.drop_tree()


def _forget_heading_slugs(tree: Any) -> None:
    """Drop the id a section takes from its heading (Sphinx: `<section id="finding-shared-libraries">`).
    trafilatura deletes a section whose id holds a word such as "share", "related" or "nav", as a share bar
    or a list of related pages: ctypes' "Finding shared libraries" went whole. An id that is not its
    heading's words stays."""
    for heading in tree.iter(*_HEADINGS):
        section = heading.getparent()
        ident = section.get("id") if section is not None else None
        if ident and set(_TOKEN.findall(ident.lower())) <= set(
            _TOKEN.findall(heading.text_content().lower())
        ):
            del section.attrib["id"]


def _unlink_running_text(tree: Any) -> None:
    """Turn links inside running text into their words. trafilatura drops a block whose share of link text
    is high, as navigation; a reference manual's sentences link each name they mention ("Returns True if
    year is a leap year, otherwise False" links True and False), and were dropped whole. A menu entry or a
    list of related pages is links with no words around them, and stays links."""
    blocks: dict[Any, list[Any]] = {}
    for link in tree.iter("a"):
        block = next((el for el in link.iterancestors() if el.tag in _RUNNING_TEXT), None)
        if block is not None:
            blocks.setdefault(block, []).append(link)
    for block, links in blocks.items():
        outside = " ".join(block.xpath(".//text()[not(ancestor::a)]"))
        inside = sum(len(link.text_content()) for link in links)
        if len(outside.split()) >= _WORDS_AROUND and len(outside.strip()) > inside:
            for link in links:
                link.drop_tag()


def _frame_the_body(tree: Any) -> None:
    """Make the body the main content's frame when trafilatura would find none. It looks for an `<article>`,
    a `<main>` or a content `<div>`; on a page with none (DocBook's output, hand-written pages) it falls
    back to picking up paragraphs, code and tables one by one, and every heading and list is lost. Within
    a frame it still prunes navigation and link lists as it does on any page."""
    try:
        from trafilatura.xpaths import BODY_XPATH
    except ImportError:  # a trafilatura that moved its frame rules: leave the page as it is
        return
    body = tree.find("body")
    if body is None or any(len(rule(tree)) for rule in BODY_XPATH):
        return
    from lxml.html import Element

    frame = Element("main")
    frame.text, body.text = body.text, None
    for child in list(body):
        frame.append(child)
    body.append(frame)
