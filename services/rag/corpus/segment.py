"""Sentence segmentation that returns exact character offsets into the document text.

Rule-based on purpose: fast (SciFact's 46k sentences in about a second), deterministic, and with offsets that
are exact by construction — a sentence is always `text[start:end]`, trimmed of surrounding white space.

Scripts beyond Latin: a sentence may start with a capital of any cased script (Cyrillic, Greek, Latin
Extended) or with a letter of a script without case (Chinese, Japanese, Korean, Arabic, Hebrew, Devanagari),
after the full stops those scripts use (。！？ need no space after them; । ؟ ۔ ։ ። do). A Chinese or Japanese
full stop inside a quotation (「…。」と言った) does not end the sentence around the quotation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Span", "split_sentences"]


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


# Blocks that never share a sentence: blank lines, and a newline before a heading / list item / quote.
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*|\n(?=[ \t]*(?:[#>*+\-•|]|\d{1,3}[.)][ \t]))")
# A candidate end: terminal punctuation, optional closing quotes/brackets, then white space; or a full-width
# full stop (Chinese, Japanese) not inside a quotation, which needs no space after it.
_CLOSERS = "\"'”’»)\\]"
_FULL_WIDTH_CLOSERS = "”’」』）】〕》〉"
_CANDIDATE = re.compile(rf"[.!?…।॥؟۔։።]+[{_CLOSERS}]*(?=\s)|[。！？｡]+(?![{_FULL_WIDTH_CLOSERS}{_CLOSERS}])")
# What may open the next sentence before its first letter: quotes, brackets, Spanish ¿ ¡.
_NEXT_SENTENCE = re.compile(r"\s*[\"'“‘(\[«„¿¡「『（《〈【]?(\S)")
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "cf",
        "vs",
        "etc",
        "al",
        "fig",
        "figs",
        "eq",
        "eqs",
        "ref",
        "refs",
        "no",
        "nos",
        "vol",
        "vols",
        "pp",
        "p",
        "ca",
        "approx",
        "resp",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "univ",
        "est",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "u.s",
        "u.k",
        "e.u",
        "ph.d",
        "b.sc",
        "m.sc",
        "a.m",
        "p.m",
    ]
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _is_abbreviation(text: str, dot_pos: int) -> bool:
    match = _WORD_BEFORE.search(text, max(0, dot_pos - 12), dot_pos)
    if not match:
        return False
    word = match.group(1).lower().strip(".")
    if word in _ABBREVIATIONS:
        return True
    # "J. Smith", "A. thaliana": a lone capital initial preceded by a space or another initial.
    token = match.group(1)
    return len(token) == 1 and token.isupper() and (match.start() == 0 or text[match.start() - 1] in " .(")


def _starts_sentence(text: str, pos: int, end: int) -> bool:
    """Whether a sentence starts at `pos`: a digit, a capital of any script, or a letter of a script that has
    no case (a lower-case letter continues the sentence: "e.g. mice", "3.5 mg. and")."""
    match = _NEXT_SENTENCE.match(text, pos, end)
    if not match:
        return False
    first = match.group(1)
    return first.isdecimal() or (first.isalpha() and not first.islower())


def _split_block(text: str, start: int, end: int, out: list[Span], max_chars: int) -> None:
    cursor = start
    for cand in _CANDIDATE.finditer(text, start, end):
        stop = cand.end()
        if not _starts_sentence(text, stop, end):
            continue
        if (
            text[cand.start()] == "."
            and cand.end() - cand.start() == 1
            and _is_abbreviation(text, cand.start())
        ):
            continue
        _emit(text, cursor, stop, out, max_chars)
        cursor = stop
    _emit(text, cursor, end, out, max_chars)


def _emit(text: str, start: int, end: int, out: list[Span], max_chars: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > max_chars:
        # An over-long "sentence" (tables, code, no punctuation) is cut at the last white space that fits.
        cut = text.rfind(" ", start + 1, start + max_chars)
        cut = cut if cut > start else start + max_chars
        _emit(text, start, cut, out, max_chars)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append(Span(start, end))


def split_sentences(text: str, max_chars: int = 2000) -> list[Span]:
    """Sentences of `text` as spans; `text[s.start:s.end]` is the sentence, verbatim."""
    spans: list[Span] = []
    cursor = 0
    for brk in _BLOCK_BREAK.finditer(text):
        _split_block(text, cursor, brk.start(), spans, max_chars)
        cursor = brk.end()
    _split_block(text, cursor, len(text), spans, max_chars)
    return spans
