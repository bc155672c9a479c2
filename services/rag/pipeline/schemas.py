"""What the pipeline returns: the shapes the CLI prints and the API will serve."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Answer", "Evidence", "Hit", "SearchResult"]


class Evidence(BaseModel):
    """One verbatim sentence: `document.text[char_start:char_end] == text`."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    title: str
    sentence_id: str = Field(description="'<doc_id>#<sentence index in the document>'")
    text: str
    char_start: int
    char_end: int
    score: float = Field(description="relevance used for selection (0..1)")


class Hit(BaseModel):
    """A ranked retrieval unit (sentence, passage or document)."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    title: str
    text: str
    char_start: int
    char_end: int
    score: float
    dense_score: float
    bm25_score: float
    rerank_score: float | None = None


class SearchResult(BaseModel):
    question: str
    hits: list[Hit]
    timings_ms: dict[str, float]


class Answer(BaseModel):
    question: str
    answer: str | None = Field(description="verbatim evidence sentences joined, or null when abstaining")
    abstained: bool
    reason: str | None = None
    confidence: float = Field(description="what the abstention threshold is compared with")
    evidence: list[Evidence]
    timings_ms: dict[str, float]
    corpus_id: str
