"""The worker's HTTP protocol. At shutdown (recycling after RAG_MAX_REQUESTS, SIGTERM) a connection accepted
just before, whose first request is still in flight, is answered with Connection: close instead of reset. An
answer leaves in one send."""

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from rag.api.worker import BoundedH11Protocol

REQUEST = b"GET / HTTP/1.1\r\nHost: rag\r\n\r\n"


class Transport(asyncio.Transport):
    """Records what the protocol writes and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def shutdown_before_the_first_request(protocol_class: type[H11Protocol]) -> Transport:
    async def scenario() -> Transport:
        config = Config(app=app, http=protocol_class, lifespan="off", log_level="warning")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.shutdown()  # the worker starts to stop: this connection was accepted, nothing read yet
        if not transport.closed:
            protocol.data_received(REQUEST)  # the request the client had already sent
        for _ in range(100):
            if transport.closed:
                break
            await asyncio.sleep(0.01)
        return transport

    return asyncio.run(scenario())


def test_a_connection_accepted_before_shutdown_gets_its_answer_then_close() -> None:
    transport = shutdown_before_the_first_request(BoundedH11Protocol)
    head = transport.written.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200") and b"connection: close" in head
    assert b"\r\nok\r\n" in transport.written and transport.closed


def test_uvicorns_own_protocol_resets_it() -> None:
    """What the worker replaced: the connection is closed with nothing written."""
    transport = shutdown_before_the_first_request(H11Protocol)
    assert transport.closed and transport.written == b""


class Sends(Transport):
    """Also records each send separately."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[bytes] = []

    def write(self, data: bytes) -> None:  # type: ignore[override]
        super().write(data)
        self.sends.append(bytes(data))


def sends_of_one_answer(protocol_class: type[H11Protocol]) -> list[bytes]:
    async def scenario() -> list[bytes]:
        config = Config(app=app, http=protocol_class, lifespan="off", log_level="warning")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = Sends()
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        for _ in range(100):
            if transport.written.endswith(b"0\r\n\r\n"):  # the chunked body's end
                break
            await asyncio.sleep(0.01)
        return transport.sends

    return asyncio.run(scenario())


def test_an_answer_leaves_in_one_send() -> None:
    """A worker killed between a response's head and its body left the balancer a head it had passed on and
    could not retry; in one send, the answer is either whole or absent (and then retried)."""
    (send,) = sends_of_one_answer(BoundedH11Protocol)
    assert send.lower().startswith(b"http/1.1 200") and send.endswith(b"\r\nok\r\n0\r\n\r\n")


def test_uvicorns_own_protocol_sends_head_and_body_apart() -> None:
    assert len(sends_of_one_answer(H11Protocol)) > 1
