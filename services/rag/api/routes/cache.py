"""`GET /cache/stats` and `POST /cache/purge` (this worker's answer cache)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..auth import require_admin_key, require_api_key
from ..cache_stats import describe_caches
from ..schemas import CacheStats
from ..services import Services, services

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/cache/stats",
    response_model=CacheStats,
    dependencies=[Depends(require_api_key)],
    summary="This worker's cache",
)
async def cache_stats(s: Annotated[Services, Depends(services)]) -> CacheStats:
    return await describe_caches(s.state.cache, s.settings)


@router.post(
    "/cache/purge", dependencies=[Depends(require_admin_key)], summary="Drop this worker's cached answers"
)
async def cache_purge(s: Annotated[Services, Depends(services)]) -> dict[str, int]:
    return {"purged": s.state.cache.purge()}
