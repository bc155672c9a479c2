"""The FastAPI app factory: routes over the one Pipeline.

`create_app()` is what gunicorn runs (`rag.api:create_app()`); tests pass a ready Pipeline. Nothing here
imports ONNX Runtime, torch or faiss: models and indexes stay behind the pipeline.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import platform
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import metadata
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_fastapi_instrumentator import Instrumentator

from .. import __version__
from ..config import Settings, load_settings
from ..errors import RagError
from ..pipeline import Answer, Pipeline
from ..redact import remember
from .cache import cache_key
from .cache_stats import describe_caches
from .errors import Forbidden, Unauthorized, install_error_handlers
from .generation import GenerationRoute
from .ingest import install_ingest
from .logs import configure_logging
from .metrics import ANSWERS, CACHE_REQUESTS, CONTENT_TYPE_LATEST, STAGE_SECONDS, render
from .middleware import RequestContextMiddleware
from .reload import Reloader
from .schemas import (
    AnswerRequest,
    AnswerResponse,
    CacheInfo,
    CacheStats,
    ErrorBody,
    ReadyBody,
    SearchRequest,
    SearchResponse,
)
from .state import ServiceState

__all__ = ["create_app", "load_pipeline"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "missing or wrong API key",
        413: "request body too large",
        422: "invalid question or parameters",
        429: "this worker is at its concurrency limit (see Retry-After)",
        503: "not ready (starting, draining or failed)",
        504: "the request passed its deadline",
    }.items()
}
_JSON = "application/json"


def load_pipeline(settings: Settings) -> Pipeline:
    return Pipeline.from_settings(settings, settings.bundle_dir)


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> FastAPI:
    """The app. Without `pipeline` it loads `settings.bundle_dir` after startup, or at once when preloading.

    With `RAG_PRELOAD=true` under gunicorn (`preload_app`), this factory runs in the master before fork, so
    the bundle's arrays and the model weights are loaded once and shared copy-on-write by the workers.
    """
    settings = settings or load_settings()
    remember(settings.secrets())  # also when the caller built the settings itself
    configure_logging(settings.log_level, settings.log_json)
    preload_error: RagError | None = None
    if pipeline is None and settings.preload:
        try:
            pipeline = load_pipeline(settings)
        except RagError as exc:  # reported by every worker's /ready, as when loading after fork
            preload_error = exc
    state = ServiceState(settings, pipeline, preload_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.install_drain_handler()
        # Loading runs beside the server so /health answers and /ready says "starting" meanwhile; a query
        # that reaches a worker still loading waits for it (gunicorn's other workers may already be ready).
        loader = asyncio.get_running_loop().run_in_executor(
            None, state.start, lambda: load_pipeline(settings)
        )
        state.settled = loader
        app.state.loader = loader
        polling = (
            asyncio.create_task(reloader.poll_forever())
            if reloader.enabled and settings.reload_interval_seconds > 0
            else None
        )
        try:
            yield
        finally:
            if polling is not None:
                polling.cancel()
            state.stop()
            await generation.aclose()

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Answers from a document collection with verbatim, cited evidence — or an explicit abstention.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.state.rag = state
    reloader = Reloader(settings, state)
    generation = GenerationRoute(settings)  # without RAG_GENERATION_BASE_URL it never loads the LLM client
    install_error_handlers(app)
    Instrumentator(excluded_handlers=["/metrics", "/health", "/ready"]).instrument(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_headers=settings.max_headers,
        draining=lambda: state.draining,
    )

    async def api_key(request: Request) -> None:
        if settings.api_key is None:
            return
        expected = settings.api_key.get_secret_value().encode()
        given = request.headers.get("x-api-key", "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), expected):
            raise Unauthorized("missing or wrong API key (X-API-Key or Authorization: Bearer)")

    async def admin_key(request: Request) -> None:
        if settings.admin_key is None:
            raise Forbidden("admin endpoints are off: set RAG_ADMIN_KEY to enable them")
        given = request.headers.get("x-admin-key", "")
        if not hmac.compare_digest(given.encode(), settings.admin_key.get_secret_value().encode()):
            raise Unauthorized("missing or wrong admin key (X-Admin-Key)")

    install_ingest(app, settings, state, admin_key)  # /ingest/*, off unless RAG_INGEST_ENABLED

    @app.post(
        "/answer",
        response_model=AnswerResponse,
        dependencies=[Depends(api_key)],
        summary="Answer a question with verbatim evidence sentences, or abstain",
    )
    async def answer(body: AnswerRequest, request: Request) -> Response:
        pipeline = await state.pipeline_when_loaded()
        log_fields = request.state.log = {}
        try:
            params = pipeline.resolve(body.overrides())
            filters = body.pipeline_filters()
            if generation.handles(body):
                return await generation.respond(body, request, pipeline, params, filters, state.admission)
            key = cache_key(pipeline.corpus_id, body.question, params.model_dump(), filters)
            cached = state.cache.get(key) if state.cache.enabled else None
            if cached is not None:
                result, age = cached
                cache = CacheInfo(hit=True, age_seconds=round(age, 3))
            else:
                result = await state.admission.run(lambda: pipeline.answer(body.question, params, filters))
                cache = CacheInfo(hit=False)
                _observe_stages(result.timings_ms)
                if state.cache.enabled:
                    state.cache.put(key, result)
            if state.cache.enabled:
                CACHE_REQUESTS.labels("hit" if cache.hit else "miss").inc()
        except RagError as exc:
            ANSWERS.labels("error").inc()
            log_fields.update(outcome="error", error_type=exc.error_type)
            raise
        outcome = "abstained" if result.abstained else "answered"
        ANSWERS.labels(outcome).inc()
        log_fields.update(outcome=outcome, cache_hit=cache.hit, confidence=result.confidence)
        if not cache.hit:
            log_fields["pipeline_ms"] = result.timings_ms.get("total")
        response = AnswerResponse.model_construct(
            **dict(result), cache=cache, request_id=request.state.request_id
        )
        return Response(
            response.model_dump_json(exclude={"generation"}),  # extractive: the shape it always had
            media_type=_JSON,
            headers=_server_timing(result, cache.hit),
        )

    @app.post(
        "/search",
        response_model=SearchResponse,
        dependencies=[Depends(api_key)],
        summary="Ranked evidence units for a question (no answer, no cache)",
    )
    async def search(body: SearchRequest, request: Request) -> Response:
        pipeline = await state.pipeline_when_loaded()
        params = pipeline.resolve(body.overrides())
        filters = body.pipeline_filters()
        result = await state.admission.run(
            lambda: pipeline.search(body.question, params, filters, body.limit)
        )
        _observe_stages(result.timings_ms)
        response = SearchResponse.model_construct(**dict(result), request_id=request.state.request_id)
        return Response(response.model_dump_json(), media_type=_JSON)

    @app.get("/health", summary="Liveness: the process serves (no model call)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=ReadyBody,
        responses={503: {"model": ReadyBody, "description": "starting, draining, saturated or failed"}},
        summary="Readiness: bundle verified and loaded, models warm, not draining, not saturated",
    )
    async def ready() -> JSONResponse:
        body = state.readiness()
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)

    @app.get(
        "/info", dependencies=[Depends(api_key)], summary="The bundle, the models and the software serving"
    )
    async def info() -> dict[str, Any]:
        pipeline = await state.pipeline_when_loaded()
        reranker = pipeline.reranker
        return {
            "service": {"version": __version__, "pid": os.getpid(), **state.describe()},
            "bundle": pipeline.bundle.manifest.model_dump(mode="json"),
            "models": {
                "backend": settings.backend,
                "embedder": asdict(pipeline.embedder.identity),
                "reranker": getattr(reranker, "name", None) if reranker else None,
                "load_seconds": pipeline.load_seconds,
            },
            "versions": _versions(),
            "settings": settings.public(),
        }

    @app.get("/metrics", summary="Prometheus metrics (summed over all workers)")
    async def metrics() -> Response:
        return Response(render(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/cache/stats",
        response_model=CacheStats,
        dependencies=[Depends(api_key)],
        summary="This worker's cache",
    )
    async def cache_stats() -> CacheStats:
        return await describe_caches(state.cache, settings)

    @app.post(
        "/admin/reload",
        dependencies=[Depends(admin_key)],
        summary="Check the channel now; swap to a new version (pulled, verified, warmed) between requests",
    )
    async def admin_reload() -> JSONResponse:
        if not reloader.enabled:
            raise Forbidden("hot reload is off: set RAG_ARTIFACTS_URI and RAG_RELOAD_CHANNEL")
        outcome = await reloader.reload()
        if outcome.error is not None:
            raise outcome.error
        return JSONResponse(
            {"version": outcome.version, "changed": outcome.changed, "previous": outcome.previous}
        )

    @app.post("/cache/purge", dependencies=[Depends(admin_key)], summary="Drop this worker's cached answers")
    async def cache_purge() -> dict[str, int]:
        return {"purged": state.cache.purge()}

    return app


def _observe_stages(timings_ms: dict[str, float]) -> None:
    for stage, ms in timings_ms.items():
        if stage != "total":
            STAGE_SECONDS.labels(stage).observe(ms / 1000.0)


def _server_timing(result: Answer, cache_hit: bool) -> dict[str, str]:
    if cache_hit:
        return {"server-timing": "cache;desc=hit"}
    return {"server-timing": ", ".join(f"{stage};dur={ms}" for stage, ms in result.timings_ms.items())}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in (
        "numpy",
        "faiss-cpu",
        "onnxruntime",
        "tokenizers",
        "torch",
        "fastapi",
        "uvicorn",
        "gunicorn",
    ):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out
