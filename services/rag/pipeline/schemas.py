"""What the pipeline returns: the shapes the CLI prints and the API will serve."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Answer", "CitedSpan", "Evidence", "Hit", "SearchResult"]


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
    page: int | None = Field(None, description="1-based page where the sentence starts (PDF, paged DOCX)")
    section: str | None = Field(None, description="the headings above the sentence, ' › '-joined")


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


class CitedSpan(BaseModel):
    """A cited span with the text around it, from the stored document: `before + text + after` is
    `document.text[context_start:context_end]`, so a client can show the span highlighted in place."""

    doc_id: str
    title: str
    char_start: int
    char_end: int
    text: str
    before: str
    after: str
    context_start: int
    context_end: int
    document_chars: int = Field(description="the stored document's length")
    page: int | None = None
    section: str | None = None
