"""`POST /answer` and `POST /search`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import require_api_key
from ..schemas import AnswerRequest, AnswerResponse, SearchRequest, SearchResponse
from ..services import Services, services

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post(
    "/answer",
    response_model=AnswerResponse,
    summary="Answer a question with verbatim evidence sentences, or abstain",
)
async def answer(
    body: AnswerRequest, request: Request, s: Annotated[Services, Depends(services)]
) -> Response:
    return await s.answers.answer(body, request)


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Ranked evidence units for a question (no answer, no cache)",
)
async def search(
    body: SearchRequest, request: Request, s: Annotated[Services, Depends(services)]
) -> Response:
    return await s.answers.search(body, request)
