"""Optional generation over the one Pipeline: grounded answers from an OpenAI-compatible inference server,
query expansion and self-query filters.

Off unless `RAG_GENERATION_BASE_URL` is set. This package's `__init__` and `schemas` are what the API imports
in every configuration (the response shape); `client` (httpx) and `service` are imported only when generation
is configured, so an extractive-only deployment never loads or calls them.

    service      orchestrates: self-query ∥ expansion → retrieval (the Pipeline) → prompt → client → check
    client       /v1/chat/completions: timeout, retries with backoff, circuit breaker (breaker), streaming
    prompt       the template that numbers the evidence sentences [1]..[k]
    check        every sentence cites evidence it was given; every number is in a cited sentence
    expansion    n paraphrases, each retrieved, fused by RRF
    self_query   question → metadata filter over the bundle's known fields and values (validated, never trusted)
"""

from .schemas import Citation, FallbackReason, GenerationInfo, Usage

__all__ = ["Citation", "FallbackReason", "GenerationInfo", "Usage"]
