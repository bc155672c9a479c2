"""Pure-ASGI middleware (cheaper than BaseHTTPMiddleware): request id, header-count and body-size caps,
`Connection: close` while draining, one JSON access-log line."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import FAILURES

__all__ = ["RequestContextMiddleware"]

access_log = logging.getLogger("rag.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_headers: int, draining: Callable[[], bool]
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_headers = max_headers
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if self.draining():
                    # A client (or balancer) reusing this connection would meet the shutdown's close: tell
                    # it to open a new one, which the balancer sends to a pod that is not draining.
                    extra.append((b"connection", b"close"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        if len(scope["headers"]) > self.max_headers:
            await self._reject(
                send_with_id, request_id, 431, "too_many_headers", f"more than {self.max_headers} headers"
            )
        elif (bounded := await self._bounded(headers, receive))[0]:
            await self.app(scope, bounded[1], send_with_id)
        else:
            await self._reject(
                send_with_id,
                request_id,
                413,
                "payload_too_large",
                f"the request body is larger than {self.max_body_bytes} bytes",
            )

        path = scope.get("path", "")
        if path not in _QUIET_PATHS or status >= 400:
            fields: dict[str, Any] = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": path,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
            }
            fields.update(state.get("log", {}))
            access_log.info("request", extra=fields)

    async def _bounded(self, headers: dict[bytes, bytes], receive: Receive) -> tuple[bool, Receive]:
        """(within the cap?, the receive to use). A body without Content-Length (chunked) is read here, up
        to the cap, and replayed: the app never sees more than `max_body_bytes`."""
        length = headers.get(b"content-length")
        if length is not None:
            try:
                return int(length) <= self.max_body_bytes, receive
            except ValueError:
                return False, receive
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            return True, receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return True, _replay([message], receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return False, receive
            if not message.get("more_body", False):
                return True, _replay(
                    [{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive
                )

    @staticmethod
    async def _reject(send: Send, request_id: str, status: int, error_type: str, message: str) -> None:
        FAILURES.labels(error_type).inc()
        body = json.dumps({"error": message, "error_type": error_type, "request_id": request_id}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], then: Receive) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0) if pending else await then()

    return receive
