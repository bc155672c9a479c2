"""Answer composition rules: the numeric safeguard."""

from __future__ import annotations

import re

__all__ = ["numbers_in", "unsupported_numbers"]

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?")


def numbers_in(text: str) -> set[str]:
    """Numbers as written, normalised (thousands separators, trailing '%' and sign kept apart)."""
    return {m.group(0).replace(",", "").lstrip("+").rstrip("%") for m in _NUMBER.finditer(text)}


def unsupported_numbers(answer: str, evidence: list[str]) -> set[str]:
    """Numbers in the answer that appear in none of the cited evidence sentences."""
    supported: set[str] = set()
    for sentence in evidence:
        supported |= numbers_in(sentence)
    return numbers_in(answer) - supported
