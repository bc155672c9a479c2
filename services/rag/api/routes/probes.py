"""`/health`, `/ready`, `/info` and `/metrics`: what a kubelet, a balancer, Prometheus and an operator ask."""

from __future__ import annotations

import asyncio
import os
import platform
from dataclasses import asdict
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ... import __version__
from ..auth import require_api_key
from ..metrics import CONTENT_TYPE_LATEST, render
from ..schemas import ReadyBody
from ..services import Services, services

__all__ = ["router"]

router = APIRouter()

_PACKAGES = ("numpy", "faiss-cpu", "onnxruntime", "tokenizers", "torch", "fastapi", "uvicorn", "gunicorn")


@router.get("/health", summary="Liveness: the process serves (no model call)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyBody,
    responses={503: {"model": ReadyBody, "description": "starting, draining, saturated or failed"}},
    summary="Readiness: bundle verified and loaded, models warm, not draining, not saturated",
)
async def ready(s: Annotated[Services, Depends(services)]) -> JSONResponse:
    # Off the event loop: with a retrieval engine, readiness asks it (a network call, bounded by its timeout).
    body = await asyncio.to_thread(s.state.readiness)
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)


@router.get(
    "/info",
    dependencies=[Depends(require_api_key)],
    summary="The bundle, the models and the software serving",
)
async def info(s: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    pipeline = await s.state.pipeline_when_loaded()
    reranker = pipeline.reranker
    return {
        "service": {"version": __version__, "pid": os.getpid(), **s.state.describe()},
        "bundle": pipeline.bundle.manifest.model_dump(mode="json"),
        "models": {
            "backend": s.settings.backend,
            "embedder": asdict(pipeline.embedder.identity),
            "reranker": getattr(reranker, "name", None) if reranker else None,
            "load_seconds": pipeline.load_seconds,
            # Of the bundle's word pieces, the share each model can only spell: above 0.4 it does not read
            # the corpus's language (README, "Languages").
            "unread_share": pipeline.unread_share,
        },
        "versions": _versions(),
        "settings": s.settings.public(),
    }


@router.get("/metrics", summary="Prometheus metrics (summed over all workers)")
async def metrics(s: Annotated[Services, Depends(services)]) -> Response:
    return Response(render(s.settings.prometheus_multiproc_dir), media_type=CONTENT_TYPE_LATEST)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out
