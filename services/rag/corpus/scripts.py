"""What text handling needs to know about writing systems beyond spaced alphabets.

Chinese and Japanese are written without spaces between words, so white space neither counts their words nor
may be put between their characters where a PDF's line happened to break. Korean is written with spaces, but
its words carry their particles ("문장입니다"), so lexical search reads it in character pairs as well, as
Lucene's and Elasticsearch's CJK analyzers do.
"""

from __future__ import annotations

import re

__all__ = ["BIGRAM_CHARS", "HAN_CHARS", "count_words", "joins_without_space"]

# Han (with its extensions and compatibility forms); with Hiragana and Katakana (and its half-width forms), the
# scripts written without spaces. Each is a regular-expression class's contents.
HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_UNSPACED = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f" + HAN_CHARS
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
# CJK punctuation and full-width forms: "。", "，", "（", "「".
_CJK_PUNCTUATION = "\u3000-\u303f\uff00-\uff65"

_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
_UNSPACED_LEFT = re.compile(f"[{_UNSPACED}{_CJK_PUNCTUATION}]$")
_UNSPACED_RIGHT = re.compile(f"^[{_UNSPACED}{_CJK_PUNCTUATION}]")
# The characters lexical search reads as overlapping pairs (a regular-expression class's contents).
BIGRAM_CHARS = _UNSPACED + _HANGUL


def count_words(text: str) -> int:
    """Words as a reader would count them: white-space separated, and each Chinese or Japanese character one
    (about what a subword tokenizer makes of it)."""
    if not _UNSPACED_CHAR.search(text):
        return len(text.split())
    rest = _UNSPACED_CHAR.sub(" ", text).split()
    return len(_UNSPACED_CHAR.findall(text)) + sum(1 for word in rest if any(c.isalnum() for c in word))


def joins_without_space(left: str, right: str) -> bool:
    """Whether text broken between `left` and `right` (a PDF's line break) runs on without a space: both
    sides are Chinese or Japanese."""
    return bool(_UNSPACED_LEFT.search(left) and _UNSPACED_RIGHT.match(right))
