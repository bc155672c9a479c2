"""The `generation` block of an answer: what the LLM layer did, and why it fell back when it did."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Citation", "FallbackReason", "GenerationInfo", "Usage"]

FallbackReason = Literal[
    # the inference server
    "timeout",
    "server_error",
    "rate_limited",
    "connection_error",
    "client_error",
    "bad_response",
    "circuit_open",
    # the post-check of the generated text
    "empty_answer",
    "uncited_sentence",
    "unknown_citation",
    "unsupported_number",
    # nothing to ground an answer on: the extractive pipeline abstained
    "abstained",
]


class Citation(BaseModel):
    """`[n]` in the generated text is `evidence[n - 1]`."""

    model_config = ConfigDict(frozen=True)

    n: int = Field(ge=1)
    sentence_id: str
    doc_id: str


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class GenerationInfo(BaseModel):
    mode: Literal["extractive", "generative"]
    answer: str | None = Field(
        None,
        description="the generated answer with [n] citations; null when it fell back (the top-level `answer` "
        "is then the extractive one) or in extractive mode",
    )
    citations: list[Citation] = Field(default_factory=list, description="the evidence the answer cites")
    model: str | None = None
    usage: Usage | None = Field(None, description="tokens of the answer's completion, as the server reports")
    latency_ms: float | None = Field(None, description="the completion call, retries included")
    fallback_reason: FallbackReason | None = Field(
        None, description="why the generated answer was not used (the extractive answer stands)"
    )
    fallback_detail: str | None = None
    expansions: list[str] = Field(
        default_factory=list, description="paraphrases retrieved beside the question"
    )
    self_query_filters: dict[str, Any] | None = Field(
        None, description="metadata filters the LLM proposed that passed validation and were applied"
    )
