"""The one place errors become HTTP responses: `{error, error_type, request_id}` and never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from ..errors import Overloaded, RagError
from ..redact import redact
from .metrics import FAILURES

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger("rag.api")


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    status: int,
    message: str,
    error_type: str,
    request_id: str | None,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    FAILURES.labels(error_type).inc()
    body: dict[str, Any] = {"error": redact(message), "error_type": error_type, "request_id": request_id}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location and message: pydantic's `input`/`ctx` can echo whole bodies or carry exception objects.
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def rag_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RagError)
        status = exc.status  # each error carries its own (rag/errors.py)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
        if status >= 500:
            log.warning(
                "request failed: %s: %s", exc.error_type, exc, extra={"request_id": request_id_of(request)}
            )
        return error_response(status, str(exc), exc.error_type, request_id_of(request), headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = _validation_detail(exc)
        loc: list[str] = detail[0]["loc"] if detail else []
        msg: str = detail[0]["msg"] if detail else "invalid request"
        message = f"{'.'.join(loc)}: {msg}" if loc else msg
        return error_response(422, message, "validation_error", request_id_of(request), detail=detail)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kinds = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }
        message: str = str(exc.detail)
        return error_response(
            exc.status_code,
            message,
            kinds.get(exc.status_code, "http_error"),
            request_id_of(request),
            headers=getattr(exc, "headers", None),
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": request_id_of(request)})
        return error_response(500, "internal error", "internal", request_id_of(request))

    app.add_exception_handler(RagError, rag_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
