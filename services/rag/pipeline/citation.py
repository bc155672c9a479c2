"""A cited span in its place: the stored text around evidence, for a client to show it highlighted."""

from __future__ import annotations

from ..errors import QueryError
from ..index import Bundle
from .schemas import CitedSpan

__all__ = ["cited_span"]

_WORD = 40  # at most this many characters more on a side to end on a word boundary (text without spaces)


def cited_span(bundle: Bundle, doc_id: str, start: int, end: int, context: int) -> CitedSpan:
    """`text[start:end]` of the document with up to `context` characters on each side, widened to whole
    words."""
    doc = bundle.document(doc_id)
    if not 0 <= start < end <= len(doc.text):
        raise QueryError(f"span {start}:{end} is not inside document {doc_id!r} ({len(doc.text)} characters)")
    lo = max(0, start - context)
    while lo > 0 and start - lo < context + _WORD and not doc.text[lo - 1].isspace():
        lo -= 1
    hi = min(len(doc.text), end + context)
    while hi < len(doc.text) and hi - end < context + _WORD and not doc.text[hi].isspace():
        hi += 1
    return CitedSpan(
        doc_id=doc.id,
        title=doc.title,
        char_start=start,
        char_end=end,
        text=doc.text[start:end],
        before=doc.text[lo:start],
        after=doc.text[end:hi],
        context_start=lo,
        context_end=hi,
        document_chars=len(doc.text),
        page=doc.page_at(start),
        section=doc.section_at(start),
    )
