"""The post-check of a generated answer: only what the evidence supports, and said where it comes from.

A generated answer is used only if
  1. every sentence carries at least one citation `[n]` (also `[1][3]`, `[1, 3]`, `[1-3]`),
  2. every cited n is evidence the model was given (1..k),
  3. every number in a sentence appears in one of the sentences it cites — the same numeric safeguard the
     extractive answer goes through (`rag.pipeline.unsupported_numbers`).
Otherwise the extractive answer stands, and the failed rule is the fallback reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..corpus.segment import split_sentences
from ..pipeline import unsupported_numbers
from .schemas import FallbackReason

__all__ = ["CheckResult", "check_answer", "split_answer"]

_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;–-]\s*\d+)*)\s*\]")
_LEADING_CITATIONS = re.compile(r"^(?:\s*\[\s*\d+(?:\s*[,;–-]\s*\d+)*\s*\])+")
# "…in 1889.[1] It…": without a space the segmenter sees no sentence end; with one, the marker leads the
# next sentence and is moved back to the one it belongs to.
_GLUED = re.compile(r"([.!?])(?=\[\s*\d)")
_WORD = re.compile(r"\w")
_MAX_RANGE = 50


@dataclass(frozen=True)
class CheckResult:
    reason: FallbackReason | None
    detail: str | None = None
    cited: list[int] = field(default_factory=list)  # evidence numbers in order of first citation

    @property
    def ok(self) -> bool:
        return self.reason is None


def split_answer(text: str) -> list[str]:
    """The answer's sentences, each with the citation markers that follow its final punctuation."""
    spaced = _GLUED.sub(r"\1 ", text.strip())
    sentences: list[str] = []
    for span in split_sentences(spaced, max_chars=len(spaced) + 1):
        sentence = spaced[span.start : span.end]
        lead = _LEADING_CITATIONS.match(sentence)
        if lead and sentences:
            sentences[-1] = f"{sentences[-1]} {lead.group(0).strip()}"
            sentence = sentence[lead.end() :].strip()
        if sentence:
            sentences.append(sentence)
    return sentences


def _cited(sentence: str) -> list[int] | None:
    """The evidence numbers a sentence cites; None when a marker is malformed (a huge range)."""
    numbers: list[int] = []
    for marker in _CITATION.finditer(sentence):
        for part in re.split(r"\s*[,;]\s*", marker.group(1)):
            lo, _, hi = re.sub(r"\s", "", part).replace("–", "-").partition("-")
            first, last = int(lo), int(hi or lo)
            if last < first or last - first > _MAX_RANGE:
                return None
            numbers.extend(range(first, last + 1))
    return numbers


def check_answer(text: str, evidence: Sequence[str]) -> CheckResult:
    """Check `text` against the evidence sentences it was given (`evidence[n - 1]` is `[n]`)."""
    if not _WORD.search(_CITATION.sub(" ", text)):
        return CheckResult("empty_answer", "the answer has no text")
    order: list[int] = []
    for sentence in split_answer(text):
        bare = _CITATION.sub(" ", sentence)
        if not _WORD.search(bare):  # markers or punctuation only
            continue
        numbers = _cited(sentence)
        if numbers is None or any(not 1 <= n <= len(evidence) for n in numbers):
            return CheckResult("unknown_citation", f"cites evidence it was not given: {sentence!r}")
        if not numbers:
            return CheckResult("uncited_sentence", f"no citation: {sentence!r}")
        missing = unsupported_numbers(bare, [evidence[n - 1] for n in numbers])
        if missing:
            return CheckResult(
                "unsupported_number",
                f"{', '.join(sorted(missing))} not in the cited evidence: {sentence!r}",
            )
        for n in numbers:
            if n not in order:
                order.append(n)
    return CheckResult(None, cited=order)
