"""Whether a model's vocabulary reads a text in words.

A model trained on one language spells another one letter by letter. bge-small-en's WordPiece vocabulary
reads English in whole words and word pieces, most of Russian, Japanese or Korean as single letters (82–86%
of their pieces on Debian's FAQ, against 7.5% for the English original and 14% for the German translation),
and most Chinese characters as unknown (68%). Such a model's vectors and relevance scores carry little of the
text's meaning, and a cross-encoder's probability over unknown pieces is no confidence at all
(docs/EVALUATION.md, "Other languages"). Han characters are words in their own right (BERT's tokenizers
split Chinese into single characters by design), so only an unknown one counts against the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..corpus.scripts import HAN_CHARS

__all__ = ["UNREAD_WARNING_SHARE", "model_unread_share", "unread_share", "unread_warning"]

# The share above which a build warns. Measured with bge-small-en: 0.07–0.14 for English and German text,
# 0.68–0.86 for Chinese, Japanese, Russian and Korean.
UNREAD_WARNING_SHARE = 0.4

_HAN = re.compile(f"[{HAN_CHARS}]")
_MARKERS = ("##", "▁", "Ġ")  # WordPiece's continuation, SentencePiece's and byte-level BPE's word start


def _unread(piece: str, unknown: str | None) -> bool:
    if piece == unknown:
        return True
    for marker in _MARKERS:
        piece = piece.removeprefix(marker)
    return len(piece) == 1 and piece.isalpha() and not _HAN.match(piece)


def unread_share(pieces: Iterable[str], unknown: str | None) -> float:
    """Of a tokenizer's pieces that hold a letter (or are its `unknown` token), the share that are unknown or
    a single letter: how much of the text the vocabulary can only spell."""
    letters = unread = 0
    for piece in pieces:
        if piece == unknown or any(c.isalpha() for c in piece):
            letters += 1
            unread += _unread(piece, unknown)
    return unread / letters if letters else 0.0


def model_unread_share(model: object, texts: list[str]) -> float | None:
    """`model.unread_share(texts)`, or None when the model cannot tell (a stand-in without a tokenizer) or
    there is nothing to read."""
    measure = getattr(model, "unread_share", None)
    return round(float(measure(texts)), 3) if measure is not None and texts else None


def unread_warning(role: str, name: str, share: float, units: int) -> str | None:
    """What to tell the operator when the `role` model ("embedder", "reranker") cannot read the corpus."""
    if share <= UNREAD_WARNING_SHARE:
        return None
    return (
        f"the {role} {name} spells {share:.0%} of this corpus's words letter by letter or does not know them "
        f"({units} units read): it was not trained on the corpus's language, so the ranking and the answers' "
        "confidence mean little here; use models for that language (README, 'Languages')"
    )
