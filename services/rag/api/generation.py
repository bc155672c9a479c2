"""/answer through the generation layer: mode checks, metrics of LLM calls, and server-sent events.

The app builds one `GenerationRoute` in every configuration. It imports `rag.generation.service` (and with it
the httpx client) only when RAG_GENERATION_BASE_URL is set; otherwise it only says no to generative requests,
and extractive requests never reach it.

Streaming (`"stream": true`) answers `text/event-stream`:
  event: evidence  the numbered evidence and the extractive answer (what `[n]` in the deltas refers to)
  event: delta     {"text": ...} as the model writes
  event: done      the same JSON as the non-streamed response; `generation.fallback_reason` set means the
                   streamed text failed the check (or the server failed) and the extractive `answer` stands
  event: error     {error, error_type} if the server itself failed midway (nothing else follows)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ..config import RetrievalParams, Settings
from ..errors import GenerationNotConfigured, QueryError
from ..pipeline import Pipeline
from .admission import Admission
from .metrics import GENERATION_FALLBACKS, GENERATION_SECONDS, GENERATION_TOKENS
from .outcome import record_answer, server_timing
from .schemas import AnswerRequest, AnswerResponse, CacheInfo

if TYPE_CHECKING:
    from ..generation.service import GenerationService, Outcome, Prepared

__all__ = ["GenerationRoute"]

log = logging.getLogger("rag.api")

Mode = Literal["extractive", "generative"]


class GenerationRoute:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: GenerationService | None = None
        if settings.generation_base_url:
            from ..generation.service import GenerationService

            self.service = GenerationService(settings)

    def mode(self, body: AnswerRequest) -> Mode:
        mode = body.mode or self.settings.generation_mode
        if mode == "generative" and self.service is None:
            raise GenerationNotConfigured(
                "generative mode needs an inference server: this service has no RAG_GENERATION_BASE_URL"
            )
        if body.stream and mode != "generative":
            raise QueryError("stream: streaming is for generative answers (mode: generative)")
        return mode

    def handles(self, body: AnswerRequest) -> bool:
        """Does this request go through the LLM layer? (Raises QueryError for one it cannot serve.)"""
        mode = self.mode(body)
        return self.service is not None and (mode == "generative" or self.service.aids_retrieval)

    async def aclose(self) -> None:
        if self.service is not None:
            await self.service.aclose()

    async def respond(
        self,
        body: AnswerRequest,
        request: Request,
        pipeline: Pipeline,
        params: RetrievalParams,
        filters: dict[str, Any] | None,
        admission: Admission,
    ) -> Response:
        """The answer (never cached: LLM output varies, and a fallback must not outlive the outage).

        Retrieval goes through admission like any answer; the LLM calls are awaited on the event loop
        (network waits, no CPU), so a slow inference server holds no inference thread."""
        service = self.service
        assert service is not None
        mode = self.mode(body)

        prepared = await service.prepare(pipeline, body.question, params, filters, mode, admission.run)
        request_id: str = request.state.request_id
        if body.stream:
            return StreamingResponse(
                self._events(service, prepared, request),
                media_type="text/event-stream",
                # no proxy buffering (nginx honours X-Accel-Buffering), or the deltas arrive all at once
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        outcome = await service.answer(prepared)
        self._record(outcome, request)
        return Response(
            _response(outcome, request_id).model_dump_json(),
            media_type="application/json",
            headers=server_timing(outcome.answer, cache_hit=False),
        )

    async def _events(
        self, service: GenerationService, prepared: Prepared, request: Request
    ) -> AsyncIterator[str]:
        request_id: str = request.state.request_id
        answer = prepared.answer
        try:
            yield _sse(
                "evidence",
                {
                    "request_id": request_id,
                    "question": answer.question,
                    "evidence": [{"n": n, **e.model_dump()} for n, e in enumerate(answer.evidence, 1)],
                    "answer": answer.answer,
                    "abstained": answer.abstained,
                    "reason": answer.reason,
                    "confidence": answer.confidence,
                    "expansions": prepared.info.expansions,
                    "self_query_filters": prepared.info.self_query_filters,
                },
            )
            deltas = service.stream(prepared)
            try:
                async for delta in deltas:
                    yield _sse("delta", {"text": delta})
            finally:  # the client went away: close the inference server's stream now, not at GC
                await deltas.aclose()
            outcome = service.finish(prepared)
            self._record(outcome, request)
            yield _sse("done", json.loads(_response(outcome, request_id).model_dump_json()))
        except Exception:  # the status line is sent already: the stream itself must say what happened
            log.exception("streaming failed", extra={"request_id": request_id})
            yield _sse(
                "error", {"error": "internal error", "error_type": "internal", "request_id": request_id}
            )

    def _record(self, outcome: Outcome, request: Request) -> None:
        """The answer as every answer is recorded, and the LLM calls behind it."""
        record_answer(outcome.answer, request, cache_hit=False, generation=outcome.generation)
        for call in outcome.calls:
            GENERATION_SECONDS.labels(call.stage).observe(call.seconds)
            if call.usage is not None:
                for kind in ("prompt", "completion"):
                    tokens = getattr(call.usage, f"{kind}_tokens")
                    if tokens:
                        GENERATION_TOKENS.labels(call.stage, kind).inc(tokens)
            if call.failure is not None and call.stage != "generate":
                GENERATION_FALLBACKS.labels(call.stage, call.failure).inc()
        info = outcome.generation
        if info.mode == "generative" and info.fallback_reason is not None:
            GENERATION_FALLBACKS.labels("generate", info.fallback_reason).inc()


def _response(outcome: Outcome, request_id: str) -> AnswerResponse:
    return AnswerResponse.model_construct(
        **dict(outcome.answer),
        cache=CacheInfo(hit=False),
        request_id=request_id,
        generation=outcome.generation,
    )


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
