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
        layout.add(_table(el), "table")
    elif tag == "list":
        for item in el.iter("item"):
            if item.getparent() is el:
                _item(item, layout)
    elif tag == "quote" and any(_is_block(child) for child in el):
        _blocks(el, layout, prose)
    elif tag != "graphic":
        text = _inline(el)
        if is_label(text):
            layout.add(text, "heading", LABEL_LEVEL)
        else:
            layout.add(text, prose)  # type: ignore[arg-type]


def _item(item: Any, layout: TextLayout) -> None:
    """A list item: its own text a list item, its nested blocks in order. A definition list's term heads its
    definition; the definition's paragraphs are paragraphs."""
    rend = item.get("rend") or ""
    if rend.startswith("dt"):
        layout.add(_inline(item), "heading", TERM_LEVEL)
        return
    prose = "paragraph" if rend.startswith("dd") else "list_item"
    inline: list[str] = [item.text or ""]
    for child in item:
        if _is_block(child):
            layout.add(_joined(inline), prose)  # type: ignore[arg-type]
            _block(child, layout, prose)
            inline = []
        else:
            inline.append(_inline(child, spaced=False))
        inline.append(child.tail or "")
    layout.add(_joined(inline), prose)  # type: ignore[arg-type]


def _is_block(el: Any) -> bool:
    """A block inside a list item or quote; `code` is one when it runs over lines (else it is inline)."""
    return el.tag in _BLOCKS or (el.tag == "code" and "\n" in "".join(el.itertext()).strip())


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


def _table(table: Any) -> str:
    rows = [[_inline(cell) for cell in row.iter("cell")] for row in table.iter("row")]
    return "\n".join(" | ".join(cells) for cells in rows if cells)
