"""Markdown (`.md`, `.markdown`), parsed as Markdown with markdown-it-py (CommonMark plus tables).

The stored text is each block's plain text: list markers, quote markers, table pipes and inline markup
(emphasis, links, code spans) are not part of it. Headings give the section path; tables and code blocks are
kept as blocks of their own, never cut into sentences.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..documents import Document, LoadReport
from .base import LABEL_LEVEL, Limits, TextLayout, decode_text, is_label

__all__ = ["load_markdown", "markdown_layout"]


def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def _plain(inline: Any) -> str:
    """An inline token's text without its markup (a code span keeps its content, an image its alt text)."""
    out: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "image":
            out.append(_plain(child) if child.children else child.content)
    return "".join(out)


def _table(tokens: Sequence[Any], i: int) -> tuple[str, int]:
    """The table starting at tokens[i] as rows of cells joined by " | ", and the index after it."""
    rows: list[list[str]] = []
    while tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline":
            rows[-1].append(_plain(token).strip())
        i += 1
    return "\n".join(" | ".join(row) for row in rows), i + 1


def markdown_layout(source: str) -> tuple[TextLayout, str]:
    """The layout of a Markdown text, and its first level-1 heading ("" when it has none)."""
    tokens = _parser().parse(source)
    layout, title = TextLayout(), ""
    in_item = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            text = _plain(tokens[i + 1]).strip()
            level = int(token.tag[1])
            title = title or (text if level == 1 else "")
            layout.add(text, "heading", level)
            i += 3
            continue
        if token.type == "table_open":
            text, i = _table(tokens, i)
            layout.add(text, "table")
            continue
        if token.type in ("fence", "code_block"):
            layout.add(token.content, "code")
        elif token.type == "list_item_open":
            in_item += 1
        elif token.type == "list_item_close":
            in_item -= 1
        elif token.type == "inline":
            text = _plain(token)
            if is_label(text):  # "What the numbers say:" introduces what follows; it answers nothing
                layout.add(text, "heading", LABEL_LEVEL)
            else:
                layout.add(text, "list_item" if in_item else "paragraph")
        i += 1
    return layout, title


def load_markdown(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    layout, title = markdown_layout(decode_text(path.read_bytes(), source, report).replace("\r\n", "\n"))
    yield layout.document(source, title or path.stem, {"source": source})
