"""Query expansion: the LLM writes n paraphrases; the question and each paraphrase are retrieved (BM25 ∥ dense,
fused as usual), and the rankings are fused by reciprocal rank fusion. A unit found by several phrasings
appears once (RRF sums its reciprocal ranks), and the fused head is reranked against the original question.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import RetrievalParams
from ..pipeline import MAX_QUESTION_CHARS, Pipeline, Ranking, Timings, rrf_fusion
from ..pipeline.candidates import score_lookup

__all__ = ["expanded_ranking", "expansion_messages", "parse_paraphrases"]

EXPANSION_PROMPT = """Write {n} different ways to ask the search question below. Keep its meaning; vary the \
wording, spell out abbreviations, use synonyms a document might use.

Reply with the {n} rewrites only, one per line, without numbering or any other text.

Question: {question}"""

_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.):]|\(\d{1,2}\))\s*")


def expansion_messages(question: str, n: int) -> list[dict[str, str]]:
    content = EXPANSION_PROMPT.replace("{n}", str(n)).replace("{question}", " ".join(question.split()))
    return [{"role": "user", "content": content}]


def _key(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip("?.! ")


def parse_paraphrases(text: str, question: str, n: int) -> list[str]:
    """Up to n distinct paraphrases from the model's reply: one per line, bullets and numbering stripped;
    repeats of the question or of each other, preambles, blank and over-long lines dropped."""
    seen = {_key(question)}
    out: list[str] = []
    for line in text.splitlines():
        candidate = _BULLET.sub("", line).strip().strip('"“”').strip()
        key = _key(candidate)
        # "Here are three rewrites:" is a preamble, not a paraphrase
        if not key or key in seen or candidate.endswith(":") or len(candidate) > MAX_QUESTION_CHARS:
            continue
        seen.add(key)
        out.append(candidate)
        if len(out) == n:
            break
    return out


def expanded_ranking(
    pipeline: Pipeline,
    queries: list[str],
    params: RetrievalParams,
    filters: dict[str, Any] | None,
    timings: Timings,
) -> Ranking:
    """`queries[0]` is the question, the rest its paraphrases; one ranking of their RRF-fused units."""
    if len(queries) == 1:
        return pipeline.rank(queries[0], params, filters, timings)
    # Rerank once, after fusion: per paraphrase it would cost n+1 cross-encoder passes for one answer.
    plain = params.model_copy(update={"rerank": False})
    rankings = [pipeline.rank(query, plain, filters, timings) for query in queries]
    with timings.stage("fuse"):
        units, fused = rrf_fusion([r.units for r in rankings], params.rrf_k)
        q = rankings[0].query_vector
        # The question's own scores, as its ranking reported them: BM25 0 and the cosine NaN (computed if
        # reported) where a unit came only from a paraphrase.
        bm25 = score_lookup(rankings[0].units, rankings[0].bm25, 0.0)(units)
        dense = score_lookup(rankings[0].units, rankings[0].dense, float("nan"))(units)
        ranking = Ranking(units, fused, dense, bm25, None, q)
    if params.rerank and pipeline.reranker is not None and len(units):
        with timings.stage("rerank"):
            ranking = pipeline.rerank(queries[0], ranking, params)
    return ranking
