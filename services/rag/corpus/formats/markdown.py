"""Markdown (`.md`, `.markdown`), parsed as Markdown with markdown-it-py (CommonMark plus tables).

The stored text is each block's plain text: list markers, quote markers, table pipes and inline markup
(emphasis, links, code spans) are not part of it. Headings give the section path; tables and code blocks are
kept as blocks of their own, never cut into sentences. A page's front matter (`front_matter`) names its title,
gives its other fields to filters (`tags`, `version`, `draft`), and is not part of its text.
"""

from __future__ import annotations

import datetime
import re
import tomllib
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


# A page's front matter, as static-site generators read it: YAML between "---" lines (Jekyll, Hugo, MkDocs,
# Docusaurus) or TOML between "+++" lines (Hugo), at the very start of the file.
_FRONT_MATTER = re.compile(r"\A(---|\+\+\+)[ \t]*\n(.*?\n)?\1[ \t]*(?:\n|\Z)", re.DOTALL)


def front_matter(source: str) -> tuple[dict[str, Any], str]:
    """The page's front matter and the Markdown after it. Unparsed, "title: Install⏎section: 5⏎---" is a
    setext heading: it was the first heading, and the section of every sentence under it. A block that does
    not parse as a mapping is left as it was (a page may open with a thematic break)."""
    match = _FRONT_MATTER.match(source)
    fields = _parsed(match.group(1), match.group(2) or "") if match is not None else None
    if match is None or not isinstance(fields, dict):
        return {}, source
    return fields, source[match.end() :]


def _parsed(fence: str, block: str) -> Any:
    """The front matter's fields, or None when the block does not parse."""
    if fence == "+++":
        try:
            return tomllib.loads(block)
        except tomllib.TOMLDecodeError:
            return None
    import yaml

    try:
        return yaml.safe_load(block)
    except yaml.YAMLError:
        return None


def _filter_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The front matter's fields a filter can test (`tags: [setup, linux]`, `draft: false`, `version: 2.1`):
    scalars and lists of scalars, dates as ISO text. The title is the document's title, not metadata."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        items = value if isinstance(value, list) else [value]
        values = [v.isoformat() if isinstance(v, datetime.date) else v for v in items]
        if key != "title" and values and all(isinstance(v, str | int | float | bool) for v in values):
            out[str(key)] = values if isinstance(value, list) else values[0]
    return out


def load_markdown(path: Path, source: str, report: LoadReport, limits: Limits) -> Iterator[Document]:
    text = decode_text(path.read_bytes(), source, report).replace("\r\n", "\n")
    fields, body = front_matter(text)
    layout, heading = markdown_layout(body)
    declared = fields.get("title")
    title = " ".join(str(declared).split()) if isinstance(declared, str | int | float) else ""
    metadata = {**_filter_values(fields), "source": source}
    yield layout.document(source, title or heading or path.stem, metadata)
