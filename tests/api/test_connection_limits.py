"""What a careless or hostile client can do to a connection, against `make run` on loopback: oversized and
too many headers, headers that never finish, connections that never speak, and keep-alive across a drain."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

import httpx
from rag_testkit.launch import Started


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a new connection and read until the server closes it or `timeout` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received + b"<reset>"
        if not chunk:
            return received + b"<closed>"
        received += chunk
    return received + b"<open>"


def health(sock: socket.socket) -> bytes:
    """GET /health on a kept-alive connection: the whole response."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while not received.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


def test_oversized_or_too_many_headers_are_refused_before_any_work(gunicorn: Started) -> None:
    """The defaults: 32 KiB of request line and headers (RAG_MAX_HEADER_BYTES), 100 headers (RAG_MAX_HEADERS)."""
    service = gunicorn()
    big = b"POST /answer HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4_000_000 + b"\r\n\r\n"
    reply = exchange(service.port, big)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    many = "".join(f"X-H{i}: v\r\n" for i in range(150)).encode()
    reply = exchange(
        service.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 431 ") and b'"error_type": "too_many_headers"' in reply, reply[:300]
    normal = httpx.get(f"{service.url}/health", headers={f"x-h{i}": "v" for i in range(50)}, timeout=30)
    assert normal.status_code == 200


def test_headers_that_never_finish_and_silent_connections_are_dropped(gunicorn: Started) -> None:
    """RAG_HEADER_TIMEOUT_SECONDS=1 (the setting under test, default 10): half-sent headers, a connection that
    never sends a byte, and the second request of a kept-alive connection all get 1 s; an idle kept-alive
    connection between requests is the balancer's to close (keep-alive 75 s), so it stays."""
    service = gunicorn(RAG_HEADER_TIMEOUT_SECONDS="1")
    started = time.monotonic()
    assert exchange(service.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ") == b"<closed>"
    assert time.monotonic() - started < 5
    assert exchange(service.port, b"") == b"<closed>"

    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        assert health(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.5)  # idle after a response: longer than the header deadline, kept
        assert health(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # a third request that stalls
        assert read_until_closed(sock, 5) == b"<closed>"


def test_a_draining_worker_closes_kept_alive_connections_after_each_answer(gunicorn: Started) -> None:
    """RAG_DRAIN_SECONDS=3 on one worker: after SIGTERM, answers on a kept-alive connection still come, each
    with `Connection: close`, so no client reuses a connection the shutdown is about to cut."""
    service = gunicorn(RAG_WORKERS="1", RAG_DRAIN_SECONDS="3")
    (worker,) = service.workers()
    with httpx.Client(base_url=service.url, timeout=30) as client:
        before = client.post("/answer", json={"question": "What do roots absorb?"})
        assert before.status_code == 200 and before.headers.get("connection") != "close"
        os.kill(worker, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while client.get("/ready").status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        during = [client.post("/answer", json={"question": f"What do roots absorb? {i}"}) for i in range(3)]
    assert [r.status_code for r in during] == [200, 200, 200]
    assert all(r.headers["connection"] == "close" for r in during)
