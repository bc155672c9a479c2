"""What every answer leaves behind, whichever path made it (extractive, cached, generative, streamed): stage
histograms, the outcome counter, the fields of its access-log line, and its Server-Timing header."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..errors import RagError
from ..generation.schemas import GenerationInfo
from ..pipeline import Answer
from .metrics import ANSWERS, STAGE_SECONDS

__all__ = ["observe_stages", "record_answer", "record_error", "server_timing"]


def observe_stages(timings_ms: dict[str, float]) -> None:
    for stage, ms in timings_ms.items():
        if stage != "total":
            STAGE_SECONDS.labels(stage).observe(ms / 1000.0)


def _log_fields(request: Request) -> dict[str, Any]:
    """The access-log line's extra fields (api/middleware.py writes them when the response is done)."""
    fields: dict[str, Any] | None = getattr(request.state, "log", None)
    if fields is None:
        fields = request.state.log = {}
    return fields


def record_answer(
    answer: Answer, request: Request, *, cache_hit: bool, generation: GenerationInfo | None = None
) -> None:
    """A cached answer's stages ran for an earlier request: they are not observed again."""
    if not cache_hit:
        observe_stages(answer.timings_ms)
    outcome = "abstained" if answer.abstained else "answered"
    ANSWERS.labels(outcome).inc()
    fields = _log_fields(request)
    fields.update(outcome=outcome, cache_hit=cache_hit, confidence=answer.confidence)
    if not cache_hit:
        fields["pipeline_ms"] = answer.timings_ms.get("total")
    if generation is not None:
        fields.update(generation_mode=generation.mode, fallback_reason=generation.fallback_reason)


def record_error(exc: RagError, request: Request) -> None:
    ANSWERS.labels("error").inc()
    _log_fields(request).update(outcome="error", error_type=exc.error_type)


def server_timing(answer: Answer, cache_hit: bool) -> dict[str, str]:
    if cache_hit:
        return {"server-timing": "cache;desc=hit"}
    return {"server-timing": ", ".join(f"{stage};dur={ms}" for stage, ms in answer.timings_ms.items())}
