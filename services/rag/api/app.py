"""The FastAPI app factory: the routers (api/routes/) over one worker's services (api/services.py).

`create_app()` is what gunicorn runs (`rag.api:create_app()`); tests pass a ready Pipeline. Nothing here
imports ONNX Runtime, torch or faiss: models and indexes stay behind the pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator

from .. import __version__
from ..config import Settings, load_settings
from ..errors import RagError
from ..pipeline import Pipeline
from ..redact import remember
from . import routes
from .errors import install_error_handlers
from .logs import configure_logging
from .middleware import RequestContextMiddleware
from .schemas import ErrorBody
from .services import Services, load_pipeline

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
    services = Services.create(settings, pipeline, preload_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services.running():
            yield

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Answers from a document collection with verbatim, cited evidence — or an explicit abstention.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.state.services = services
    install_error_handlers(app)
    Instrumentator(excluded_handlers=["/metrics", "/health", "/ready"]).instrument(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_headers=settings.max_headers,
        draining=lambda: services.state.draining,
    )
    for router in (
        routes.answer,
        routes.documents,
        routes.probes,
        routes.cache,
        routes.admin,
        routes.ingest,
        routes.page,
    ):
        app.include_router(router)
    return app
