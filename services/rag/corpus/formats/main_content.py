"""A web page's main content, as trafilatura extracts it in XML, laid out block by block.

trafilatura's XML keeps the page's structure: `head` (with its level), `p`, `list`/`item` (a definition list's
terms and definitions marked `dt`/`dd`), block `code`, `table`/`row`/`cell` and `quote`. Reading that tree
directly keeps every block what the page made it. Its Markdown output does not: an inline `<code>` whose text
runs over a line break comes out as a code fence in mid-sentence, and from there to the end of the page prose
and code trade places (on Python's own documentation, a sixth of the tutorial's paragraphs became code).
"""

from __future__ import annotations

from typing import Any

from .base import LABEL_LEVEL, TERM_LEVEL, TextLayout, is_label

__all__ = ["main_content_layout"]

_BLOCKS = frozenset(("head", "p", "list", "quote", "table"))
_DEFAULT_LEVEL = 2  # a `head` trafilatura gave no level


def main_content_layout(xml: str) -> tuple[TextLayout, str]:
    """The layout of trafilatura's XML output, and its first level-1 heading ("" when it has none)."""
    from lxml import etree

    root = etree.fromstring(xml.encode("utf-8"))
    layout = TextLayout()
    main = root.find("main")
    _blocks(main if main is not None else root, layout, "paragraph")
    first = next((el for el in root.iter("head") if el.get("rend") == "h1"), None)
    return layout, (_inline(first) if first is not None else "")


def _blocks(parent: Any, layout: TextLayout, prose: str) -> None:
    """Lay out `parent`'s children; `prose` is the kind its paragraphs are (list items' are list items)."""
    for child in parent:
        _block(child, layout, prose)


def _block(el: Any, layout: TextLayout, prose: str) -> None:
    tag = el.tag
    if tag == "head":
        layout.add(_inline(el), "heading", _level(el))
    elif tag == "code":
        layout.add(_code(el), "code")
    elif tag == "table":
        _table(el, layout)
    elif tag == "row":  # a layout table's row, its table left out by trafilatura
        for cell in _children(el, "cell"):
            _mixed(cell, layout, "paragraph")
    elif tag == "list":
        for item in _children(el, "item"):
            _item(item, layout)
    elif tag == "graphic":
        return
    elif any(_is_block(child) for child in el):
        _mixed(el, layout, prose)
    else:
        _text(_inline(el), layout, prose)


def _text(text: str, layout: TextLayout, prose: str) -> None:
    if is_label(text):  # "For example:" introduces what follows; it answers nothing
        layout.add(text, "heading", LABEL_LEVEL)
    else:
        layout.add(text, prose)  # type: ignore[arg-type]


def _mixed(el: Any, layout: TextLayout, prose: str) -> None:
    """Text and blocks side by side (a list item holding a paragraph and a nested list): each run of text
    between blocks is a block of its own, in order."""
    inline: list[str] = [el.text or ""]
    for child in el:
        if _is_block(child):
            _text(_joined(inline), layout, prose)
            _block(child, layout, prose)
            inline = []
        else:
            inline.append(_inline(child, spaced=False))
        inline.append(child.tail or "")
    _text(_joined(inline), layout, prose)


def _item(item: Any, layout: TextLayout) -> None:
    """A list item; a definition list's term heads its definition, whose paragraphs are paragraphs."""
    rend = item.get("rend") or ""
    if rend.startswith("dt"):
        layout.add(_inline(item), "heading", TERM_LEVEL)
    else:
        _mixed(item, layout, "paragraph" if rend.startswith("dd") else "list_item")


def _table(table: Any, layout: TextLayout) -> None:
    """A data table is one block, a row per line and " | " between cells. A layout table, whose cells hold
    paragraphs, headings or lists (pages laid out before CSS, and gtk-doc's), is its cells' blocks."""
    cells = [cell for row in _children(table, "row") for cell in _children(row, "cell")]
    if any(_is_block(child) for cell in cells for child in cell):
        for cell in cells:
            _mixed(cell, layout, "paragraph")
        return
    rows = [[_inline(cell) for cell in _children(row, "cell")] for row in _children(table, "row")]
    layout.add("\n".join(" | ".join(cells) for cells in rows if cells), "table")


def _children(el: Any, tag: str) -> list[Any]:
    return [child for child in el if child.tag == tag]


def _is_block(el: Any) -> bool:
    """A block inside a paragraph, list item, quote or cell. trafilatura gives inline and block code the same
    tag: `code` is a block when it runs over lines and either begins or ends with a line break (a `<pre>`'s
    text does) or stands on lines of its own. "using <code>from package import⏎specific_submodule</code>!"
    is inline."""
    if el.tag in _BLOCKS:
        return True
    text = "".join(el.itertext())
    if el.tag != "code" or "\n" not in text.strip():
        return False
    if text.startswith("\n") or text.endswith("\n"):
        return True
    previous = el.getprevious()
    before = (previous.tail if previous is not None else el.getparent().text) or ""
    after = el.tail or ""
    return (not before.strip() or before.rstrip(" \t").endswith("\n")) and (
        not after.strip() or after.lstrip(" \t").startswith("\n")
    )


def _inline(el: Any, spaced: bool = True) -> str:
    """An element's text as a reader sees it: markup gone, line breaks and runs of white space one space."""
    text = "".join(_texts(el))
    return " ".join(text.split()) if spaced else text


def _texts(el: Any) -> list[str]:
    out = [el.text or ""]
    for child in el:
        out += ["\n"] if child.tag == "lb" else _texts(child)
        out.append(child.tail or "")
    return out


def _joined(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


def _code(el: Any) -> str:
    return "".join(el.itertext()).strip("\n")


def _level(head: Any) -> int:
    rend = head.get("rend") or ""
    return int(rend[1]) if len(rend) == 2 and rend[0] == "h" and rend[1] in "123456" else _DEFAULT_LEVEL
