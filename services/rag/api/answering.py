"""`POST /answer` and `POST /search` behind the routes: parameters resolved, the answer cache, admission,
and the generation layer when a request goes through it. Each answer is recorded once (api/outcome.py)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..config import RetrievalParams
from ..errors import RagError
from ..pipeline import Answer, Pipeline
from .cache import cache_key
from .generation import GenerationRoute
from .metrics import CACHE_REQUESTS
from .outcome import observe_stages, record_answer, record_error, server_timing
from .schemas import AnswerRequest, AnswerResponse, CacheInfo, SearchRequest, SearchResponse
from .state import ServiceState

__all__ = ["JSON", "AnswerService"]

JSON = "application/json"


class AnswerService:
    def __init__(self, state: ServiceState, generation: GenerationRoute) -> None:
        self.state = state
        self.generation = generation

    async def answer(self, body: AnswerRequest, request: Request) -> Response:
        pipeline = await self.state.pipeline_when_loaded()
        request.state.log = {}
        try:
            params = pipeline.resolve(body.overrides())
            filters = body.pipeline_filters()
            if self.generation.handles(body):
                return await self.generation.respond(
                    body, request, pipeline, params, filters, self.state.admission
                )
            result, cache = await self._extractive(pipeline, body.question, params, filters)
        except RagError as exc:
            record_error(exc, request)
            raise
        record_answer(result, request, cache_hit=cache.hit)
        response = AnswerResponse.model_construct(
            **dict(result), cache=cache, request_id=request.state.request_id
        )
        return Response(
            response.model_dump_json(exclude={"generation"}),  # extractive: the shape it always had
            media_type=JSON,
            headers=server_timing(result, cache.hit),
        )

    async def _extractive(
        self, pipeline: Pipeline, question: str, params: RetrievalParams, filters: dict[str, Any] | None
    ) -> tuple[Answer, CacheInfo]:
        cache = self.state.cache
        key = cache_key(pipeline.corpus_id, question, params.model_dump(), filters)
        cached = cache.get(key) if cache.enabled else None
        if cached is not None:
            result, age = cached
            info = CacheInfo(hit=True, age_seconds=round(age, 3))
        else:
            result = await self.state.admission.run(lambda: pipeline.answer(question, params, filters))
            info = CacheInfo(hit=False)
            if cache.enabled:
                cache.put(key, result)
        if cache.enabled:
            CACHE_REQUESTS.labels("hit" if info.hit else "miss").inc()
        return result, info

    async def search(self, body: SearchRequest, request: Request) -> Response:
        pipeline = await self.state.pipeline_when_loaded()
        params = pipeline.resolve(body.overrides())
        filters = body.pipeline_filters()
        result = await self.state.admission.run(
            lambda: pipeline.search(body.question, params, filters, body.limit)
        )
        observe_stages(result.timings_ms)
        response = SearchResponse.model_construct(**dict(result), request_id=request.state.request_id)
        return Response(response.model_dump_json(), media_type=JSON)
