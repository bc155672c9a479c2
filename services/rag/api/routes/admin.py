"""`POST /admin/reload`: check the release channel now and swap to a new version between requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ...errors import Forbidden
from ..auth import require_admin_key
from ..services import Services, services

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_admin_key)])


@router.post(
    "/admin/reload",
    summary="Check the channel now; swap to a new version (pulled, verified, warmed) between requests",
)
async def admin_reload(s: Annotated[Services, Depends(services)]) -> JSONResponse:
    if not s.reloader.enabled:
        raise Forbidden("hot reload is off: set RAG_ARTIFACTS_URI and RAG_RELOAD_CHANNEL")
    outcome = await s.reloader.reload()
    if outcome.error is not None:
        raise outcome.error
    return JSONResponse(
        {"version": outcome.version, "changed": outcome.changed, "previous": outcome.previous}
    )
