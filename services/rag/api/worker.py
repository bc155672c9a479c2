"""The gunicorn worker the service runs (`worker_class` in gunicorn_conf): uvicorn's, speaking HTTP/1.1
through h11 with the bounds uvicorn leaves open.

- Header size: h11 refuses (400) a request whose line and headers pass `RAG_MAX_HEADER_BYTES`; uvicorn's
  default httptools parser accepted a 64 MB header before any authentication looked at it.
- Header deadline: a request's headers must arrive within `RAG_HEADER_TIMEOUT_SECONDS` of its first byte (or
  of the connection opening), else the connection is closed. uvicorn arms its keep-alive timer only after a
  first response, so a connection that never finished its headers, or never sent any, was held forever.
- The header count is bounded by the app (middleware.py: 431), where the request is already parsed.
- Shutdown (recycling after `RAG_MAX_REQUESTS`, SIGTERM) no longer resets a connection accepted just before
  it: uvicorn closed every connection without a request in progress, including one whose first request was
  still in the socket, so that client got a reset. Such a connection is now served that one request, with
  `Connection: close`, or closed after a short grace if nothing comes.
- One send per response: what the protocol writes in one event-loop turn (a response's head, body and end)
  leaves in one send (`CoalescedWrites`), so a worker killed mid-answer leaves either nothing, which the
  balancer retries, or the whole answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

from ..config import load_settings

__all__ = ["BoundedH11Protocol", "CoalescedWrites", "RagWorker"]


_SHUTDOWN_GRACE = 1.0  # seconds a fresh connection has to deliver its first request once shutdown starts


class CoalescedWrites:
    """A transport whose writes in one event-loop turn leave in one send.

    uvicorn writes a response's head and its body separately. The first send wakes the reader (the
    balancer), and the kernel often runs it before the worker's second send: a worker killed there left a
    head without a body, which the balancer had already passed on and could not retry (seen in CI).
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def _flush(self) -> None:
        if self._pending and not self._transport.is_closing():
            self._transport.write(b"".join(self._pending))
        self._pending.clear()


class BoundedH11Protocol(H11Protocol):
    header_timeout: float = 10.0  # set by RagWorker from the settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._last_request_only = False

    def shutdown(self) -> None:
        if self.cycle is None and not self.transport.is_closing():  # accepted, no request read yet
            self._last_request_only = True
            self._disarm()
            self._header_deadline = self.loop.call_later(_SHUTDOWN_GRACE, self._headers_too_slow)
            return
        super().shutdown()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, CoalescedWrites(transport, self.loop)))
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self._last_request_only and self.cycle is not None and self.cycle.keep_alive:
            # Answered with Connection: close (a new list: the defaults are shared), then the connection ends
            self.cycle.keep_alive = False
            self.cycle.default_headers = [*self.cycle.default_headers, (b"connection", b"close")]
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # its headers are in

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class RagWorker(UvicornWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = load_settings()
        BoundedH11Protocol.header_timeout = settings.header_timeout_seconds
        self.CONFIG_KWARGS = {
            **UvicornWorker.CONFIG_KWARGS,
            "http": BoundedH11Protocol,
            "h11_max_incomplete_event_size": settings.max_header_bytes,
        }
        super().__init__(*args, **kwargs)
