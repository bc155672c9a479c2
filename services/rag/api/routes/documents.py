"""`GET /documents/{doc_id}/span`: a cited span with the stored text around it, for highlighting."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ...pipeline.schemas import CitedSpan
from ..auth import require_api_key
from ..services import Services, services

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.get(
    "/documents/{doc_id:path}/span",
    response_model=CitedSpan,
    summary="A cited span (an evidence's char_start:char_end) in its document, with the text around it",
)
async def span(
    doc_id: str,
    s: Annotated[Services, Depends(services)],
    start: Annotated[int, Query(ge=0, description="the evidence's char_start")],
    end: Annotated[int, Query(ge=1, description="the evidence's char_end")],
    context: Annotated[int, Query(ge=0, le=5000, description="characters shown on each side")] = 300,
) -> CitedSpan:
    pipeline = await s.state.pipeline_when_loaded()
    return pipeline.cited_span(doc_id, start, end, context)
