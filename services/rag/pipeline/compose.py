"""Last stage: the extractive answer from the picked evidence, or an abstention: the confidence (the
reranker's best probability, else the best evidence's cosine) against its threshold, and the numeric
safeguard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import RetrievalParams
from .evidence import Selection
from .retrieve import Ranking
from .schemas import Evidence

__all__ = ["Decision", "decide", "numbers_in", "unsupported_numbers"]

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?")


@dataclass(frozen=True)
class Decision:
    evidence: list[Evidence]
    answer: str | None  # None when abstaining
    reason: str | None  # why it abstains
    confidence: float


def decide(
    evidence: list[Evidence],
    selection: Selection,
    ranking: Ranking,
    p: RetrievalParams,
    filters: dict[str, Any] | None,
) -> Decision:
    reranked = ranking.rerank is not None
    confidence = _confidence(evidence, selection, ranking)
    threshold = p.abstain_rerank_threshold if reranked else p.abstain_threshold
    reason = None
    if not evidence:
        reason = "no evidence found" + (" within the filters" if filters else "")
    elif confidence < threshold:
        kind = "reranker score" if reranked else "similarity"
        reason = f"weak evidence: best {kind} {confidence:.3f} is below the threshold {threshold:.3f}"
    text = " ".join(e.text for e in evidence) if evidence else None
    if text and (missing := unsupported_numbers(text, [e.text for e in evidence])):
        reason = f"numbers not found in the cited evidence: {', '.join(sorted(missing))}"
    return Decision(evidence, None if reason else text, reason, confidence)


def _confidence(evidence: list[Evidence], selection: Selection, ranking: Ranking) -> float:
    if not evidence:
        return 0.0
    if ranking.rerank is not None:
        return float(np.nanmax(ranking.rerank))
    return float(selection.vectors[selection.picked[0]] @ ranking.query_vector)


def numbers_in(text: str) -> set[str]:
    """Numbers as written, normalised (thousands separators, trailing '%' and sign kept apart)."""
    return {m.group(0).replace(",", "").lstrip("+").rstrip("%") for m in _NUMBER.finditer(text)}


def unsupported_numbers(answer: str, evidence: list[str]) -> set[str]:
    """Numbers in the answer that appear in none of the cited evidence sentences."""
    supported: set[str] = set()
    for sentence in evidence:
        supported |= numbers_in(sentence)
    return numbers_in(answer) - supported
