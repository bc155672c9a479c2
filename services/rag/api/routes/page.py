"""`GET /`: a small page to ask, read the answer and open a citation highlighted in its document.

One static file (api/static/index.html): no build step, no external assets. It calls `/answer` and
`/documents/{doc_id}/span` like any client, so it needs no route of its own beyond this one; with
`RAG_API_KEY` set it asks for the key and sends it as X-API-Key.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["router"]

router = APIRouter()


@cache
def _page() -> str:
    return resources.files("rag.api").joinpath("static/index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"cache-control": "no-cache"})
