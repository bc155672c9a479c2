"""One loader per file type, by suffix. Adding a type is one module here and one line in `LOADERS`."""

from __future__ import annotations

from .base import Limits, Loader, TextLayout, Unreadable
from .docx import load_docx
from .html import load_html
from .jsonl import load_jsonl
from .markdown import load_markdown
from .pdf import load_pdf
from .text import load_text

__all__ = ["LOADERS", "SUPPORTED_SUFFIXES", "Limits", "Loader", "TextLayout", "Unreadable"]

LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".jsonl": load_jsonl,
    ".pdf": load_pdf,
    ".docx": load_docx,
}
SUPPORTED_SUFFIXES = tuple(LOADERS)
