"""The OpenAI-compatible client against the scripted server process: protocol, retries, faults, breaker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from scripted_llm import API_KEY, ScriptedLlm

from rag.errors import GenerationError
from rag.generation.breaker import CircuitBreaker
from rag.generation.client import ChatClient, chat_url

MESSAGES = [{"role": "user", "content": "Say hello."}]


def client(llm: ScriptedLlm, **options: Any) -> ChatClient:
    settings: dict[str, Any] = {"api_key": API_KEY, "timeout": 2.0, "retries": 2, "backoff": 0.01, **options}
    return ChatClient(llm.base_url, "scripted-model", **settings)


def complete(chat: ChatClient, **options: Any) -> Any:
    async def go() -> Any:
        try:
            return await chat.complete(MESSAGES, **options)
        finally:
            await chat.aclose()

    return asyncio.run(go())


def stream(chat: ChatClient) -> tuple[list[str], Any]:
    async def go() -> tuple[list[str], Any]:
        deltas: list[str] = []
        s = chat.stream(MESSAGES, max_tokens=50)
        try:
            async for delta in s:
                deltas.append(delta)
        finally:
            await chat.aclose()
        return deltas, s

    return asyncio.run(go())


def reason_of(fn: Any) -> str:
    with pytest.raises(GenerationError) as caught:
        fn()
    return caught.value.reason


def test_base_url_with_or_without_v1() -> None:
    assert chat_url("http://h:8000") == chat_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"


def test_completion_sends_model_key_and_options_and_reads_usage(llm: ScriptedLlm) -> None:
    llm.script(queue=[{"content": "Hello there."}])
    completion = complete(client(llm), max_tokens=7, temperature=0.0)
    assert completion.text == "Hello there."
    assert completion.model == "scripted-model"
    assert completion.usage.completion_tokens == 2 and completion.usage.prompt_tokens == 2
    (call,) = llm.calls()
    assert call["auth"] == f"Bearer {API_KEY}"
    assert call["body"]["messages"] == MESSAGES and call["body"]["max_tokens"] == 7
    assert "stream" not in call["body"]


def test_5xx_is_retried_then_succeeds(llm: ScriptedLlm) -> None:
    llm.script(queue=[{"status": 503}, {"status": 500}, {"content": "ok"}])
    assert complete(client(llm)).text == "ok"
    assert len(llm.calls()) == 3


@pytest.mark.parametrize(
    ("behaviour", "reason", "attempts"),
    [
        ({"status": 500}, "server_error", 3),
        ({"status": 429}, "rate_limited", 3),
        ({"drop": True}, "connection_error", 3),
        ({"status": 400}, "client_error", 1),  # a request the server rejects is not retried
        ({"delay": 2.0, "content": "late"}, "timeout", 1),  # a timeout already cost the whole wait
    ],
)
def test_failures_are_classified_and_retried_only_when_it_can_help(
    llm: ScriptedLlm, behaviour: dict[str, Any], reason: str, attempts: int
) -> None:
    llm.script(default=behaviour)
    started = time.monotonic()
    assert reason_of(lambda: complete(client(llm, timeout=0.4))) == reason
    assert len(llm.calls()) == attempts
    if reason == "timeout":
        assert time.monotonic() - started < 1.5


def test_wrong_api_key_is_a_client_error(llm: ScriptedLlm) -> None:
    llm.script(default={"content": "never"})
    assert reason_of(lambda: complete(client(llm, api_key="wrong"))) == "client_error"


def test_connection_refused_is_a_connection_error() -> None:
    from rag_testkit.tools import free_port

    chat = ChatClient(f"http://127.0.0.1:{free_port()}", "m", retries=1, backoff=0.01)
    assert reason_of(lambda: complete(chat)) == "connection_error"


def test_breaker_open_means_no_request_is_sent(llm: ScriptedLlm) -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=30)
    chat = client(llm, retries=0, breaker=breaker)
    llm.script(default={"status": 500})
    for _ in range(2):
        assert reason_of(lambda: complete(chat)) == "server_error"
    assert breaker.state == "open"
    assert reason_of(lambda: complete(chat)) == "circuit_open"
    assert len(llm.calls()) == 2  # the third call never left the process
    # 4xx comes from a server that is up: it does not count against it
    breaker.record_success()
    llm.script(default={"status": 400})
    for _ in range(3):
        assert reason_of(lambda: complete(chat)) == "client_error"
    assert breaker.state == "closed"


def test_stream_yields_deltas_and_usage(llm: ScriptedLlm) -> None:
    llm.script(queue=[{"chunks": ["Hel", "lo ", "there."]}])
    deltas, s = stream(client(llm))
    assert deltas == ["Hel", "lo ", "there."] and s.text == "Hello there."
    assert s.usage is not None and s.usage.completion_tokens == 2 and s.model == "scripted-model"
    body = llm.calls()[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_token_holding_a_unicode_line_separator_streams_whole(llm: ScriptedLlm) -> None:
    """The server writes chunks as vLLM does, non-ASCII raw: U+2028, U+0085 and \x0c inside a token end no
    SSE line (httpx's aiter_lines ended lines there, and the chunk was "not JSON")."""
    pieces = ["Line one.\u2028", "Line\x85two\x0c", "é — end."]
    llm.script(queue=[{"chunks": pieces}])
    deltas, s = stream(client(llm))
    assert deltas == pieces and s.text == "".join(pieces)


def test_stream_dropped_midway_is_a_connection_error_and_not_retried(llm: ScriptedLlm) -> None:
    llm.script(default={"content": "one two three four", "drop_after": 2})
    got: list[str] = []

    async def go() -> None:
        chat = client(llm)
        try:
            async for delta in chat.stream(MESSAGES):
                got.append(delta)
        finally:
            await chat.aclose()

    assert reason_of(lambda: asyncio.run(go())) == "connection_error"
    assert got == ["one ", "two "] and len(llm.calls()) == 1


def test_stream_connect_failures_are_retried(llm: ScriptedLlm) -> None:
    llm.script(queue=[{"status": 502}, {"chunks": ["fine"]}])
    deltas, _ = stream(client(llm))
    assert deltas == ["fine"] and len(llm.calls()) == 2


def test_stream_stall_is_a_timeout(llm: ScriptedLlm) -> None:
    llm.script(default={"chunks": ["a", "b"], "chunk_delay": 1.0})
    assert reason_of(lambda: stream(client(llm, timeout=0.3))) == "timeout"
