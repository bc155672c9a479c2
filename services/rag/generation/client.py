"""An OpenAI-compatible chat client (`POST {base}/v1/chat/completions`), streamed or not.

Every failure becomes a `GenerationError` whose `reason` is the answer's fallback reason:
  timeout           no answer (or, streaming, no next chunk) within the timeout   — not retried: it already
                    cost the whole timeout, and a slow server is rarely faster the second time
  server_error      5xx, or an error object inside a stream                       — retried
  rate_limited      429                                                           — retried
  connection_error  refused, reset, or closed before the response was complete    — retried (before streaming)
  client_error      another 4xx (wrong key, unknown model, a request it rejects)  — not retried
  bad_response      a body that is not a chat completion                          — not retried
  circuit_open      the breaker is open: no request was sent
Retries back off exponentially with jitter. Each call (retries included) counts once for the breaker.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ..errors import GenerationError
from .breaker import CircuitBreaker
from .schemas import Usage

__all__ = ["ChatClient", "ChatStream", "Completion", "chat_url"]

Message = dict[str, str]
_T = TypeVar("_T")
_SSE_LINE_END = re.compile(r"\r\n|\r|\n")
_RETRYABLE = frozenset({"server_error", "rate_limited", "connection_error"})
# What the breaker counts against the server. A 4xx or a malformed body comes from a server that is up and
# answering fast; opening the circuit on it would also stop calls that work (a server that rejects only
# `response_format` would otherwise take plain answers down with self-query).
_OUTAGE = frozenset({"timeout", *_RETRYABLE})


def chat_url(base_url: str) -> str:
    """Servers are configured by their root or by their OpenAI base (`…/v1`), as OpenAI's own clients are."""
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


@dataclass(frozen=True)
class Completion:
    text: str
    model: str | None
    usage: Usage | None
    seconds: float


class ChatStream:
    """Content deltas as they arrive (`async for delta in stream`); `usage` and `model` once it ended."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: Usage | None = None
        self.seconds = 0.0
        self.parts: list[str] = []
        self._deltas: AsyncIterator[str] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        assert self._deltas is not None
        return self._deltas

    async def aclose(self) -> None:
        """Stop early (the HTTP client went away): closes the connection to the inference server."""
        if self._deltas is not None and hasattr(self._deltas, "aclose"):
            await self._deltas.aclose()

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 20.0,
        retries: int = 2,
        backoff: float = 0.25,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 32,
    ) -> None:
        self.url = chat_url(base_url)
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.breaker = breaker or CircuitBreaker(failures=5, reset_seconds=30.0)
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._limits = httpx.Limits(max_connections=max_connections)
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        # Made on first use, inside the event loop that will use it: httpx binds its pool to that loop.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), limits=self._limits)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _body(self, messages: list[Message], options: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, **options}

    # ---- one call through the breaker and the retries ----------------------------------------------------

    def _admit(self) -> None:
        if not self.breaker.allow():
            raise GenerationError("circuit_open", "the inference server's circuit is open (recent failures)")

    def _record(self, exc: GenerationError) -> None:
        if exc.reason in _OUTAGE:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()

    async def _retrying(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        for n in range(self.retries + 1):
            try:
                return await attempt()
            except GenerationError as exc:
                if exc.reason not in _RETRYABLE or n == self.retries:
                    raise
            await asyncio.sleep(self.backoff * 2**n * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def complete(self, messages: list[Message], **options: Any) -> Completion:
        """One chat completion (`options`: max_tokens, temperature, response_format, ...)."""
        self._admit()
        started = time.perf_counter()
        try:
            body = await self._retrying(lambda: self._post(self._body(messages, options)))
            completion = _parse_completion(body, time.perf_counter() - started)
        except GenerationError as exc:
            self._record(exc)
            raise
        except BaseException:  # cancelled with the request: no verdict on the server
            self.breaker.record_abandoned()
            raise
        self.breaker.record_success()
        return completion

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            # httpx's timeout bounds each read; this bounds the whole response, however slowly it trickles.
            async with asyncio.timeout(self.timeout):
                response = await self._client().post(self.url, json=body, headers=self._headers)
        except (TimeoutError, httpx.TimeoutException):
            raise GenerationError("timeout", f"no answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise GenerationError("connection_error", f"{type(exc).__name__}: {exc}") from None
        _raise_for_status(response.status_code, response.text)
        try:
            data = response.json()
        except ValueError:
            raise GenerationError("bad_response", "the response is not JSON") from None
        if not isinstance(data, dict):
            raise GenerationError("bad_response", "the response is not a JSON object")
        return data

    # ---- streaming ---------------------------------------------------------------------------------------

    def stream(self, messages: list[Message], **options: Any) -> ChatStream:
        """A streamed completion. Connecting is retried like `complete`; once content flows it is not (the
        caller has already shown part of it). Errors surface from the iteration as GenerationError."""
        body = self._body(messages, {**options, "stream": True, "stream_options": {"include_usage": True}})
        stream = ChatStream()
        stream._deltas = self._stream_deltas(body, stream)
        return stream

    async def _stream_deltas(self, body: dict[str, Any], stream: ChatStream) -> AsyncIterator[str]:
        self._admit()
        started = time.perf_counter()
        verdict = False
        try:
            response = await self._retrying(lambda: self._open_stream(body))
            try:
                async for event in _sse_events(response):
                    if event == "[DONE]":
                        break
                    delta = _parse_chunk(event, stream)
                    if delta:
                        stream.parts.append(delta)
                        yield delta
                else:
                    raise GenerationError("connection_error", "the stream ended without [DONE]")
            except (TimeoutError, httpx.TimeoutException):
                raise GenerationError("timeout", f"no chunk within {self.timeout:g} s") from None
            except httpx.TransportError as exc:
                raise GenerationError("connection_error", f"{type(exc).__name__}: {exc}") from None
            finally:
                await response.aclose()
            stream.seconds = time.perf_counter() - started
            verdict = True
            self.breaker.record_success()
        except GenerationError as exc:
            verdict = True
            self._record(exc)
            raise
        finally:
            if not verdict:  # the consumer stopped iterating (client gone): no verdict on the server
                self.breaker.record_abandoned()

    async def _open_stream(self, body: dict[str, Any]) -> httpx.Response:
        client = self._client()
        request = client.build_request("POST", self.url, json=body, headers=self._headers)
        try:
            async with asyncio.timeout(self.timeout):
                response = await client.send(request, stream=True)
        except (TimeoutError, httpx.TimeoutException):
            raise GenerationError("timeout", f"no response within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise GenerationError("connection_error", f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            try:
                text = (await response.aread()).decode("utf-8", "replace")
            except httpx.HTTPError:
                text = ""
            finally:
                await response.aclose()
            _raise_for_status(response.status_code, text)
        return response


def _raise_for_status(status: int, text: str) -> None:
    if status < 400:
        return
    reason = "server_error" if status >= 500 else "rate_limited" if status == 429 else "client_error"
    raise GenerationError(reason, f"the inference server answered {status}: {text[:200]}")


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    values = {k: data.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return Usage(**{k: v for k, v in values.items() if isinstance(v, int)})


def _parse_completion(body: dict[str, Any], seconds: float) -> Completion:
    try:
        content = body["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise GenerationError("bad_response", "the response has no choices[0].message") from None
    if content is not None and not isinstance(content, str):
        raise GenerationError("bad_response", "choices[0].message.content is not a string")
    model = body.get("model")
    return Completion(
        text=content or "",
        model=model if isinstance(model, str) else None,
        usage=_usage(body.get("usage")),
        seconds=seconds,
    )


def _parse_chunk(data: str, stream: ChatStream) -> str:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise GenerationError("bad_response", "a stream chunk is not JSON") from None
    if not isinstance(chunk, dict):
        raise GenerationError("bad_response", "a stream chunk is not a JSON object")
    if "error" in chunk:  # vLLM and others report a failure inside a stream that began with 200
        raise GenerationError("server_error", f"error in the stream: {str(chunk['error'])[:200]}")
    if isinstance(chunk.get("model"), str):
        stream.model = chunk["model"]
    if chunk.get("usage"):
        stream.usage = _usage(chunk["usage"])
    choices = chunk.get("choices") or []
    if not choices:  # the usage chunk (stream_options.include_usage) has no choices
        return ""
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


async def _sse_lines(response: httpx.Response) -> AsyncIterator[str]:
    """The stream's lines, ended as the SSE spec ends them: CRLF, LF or CR. httpx's `aiter_lines` also ends a
    line at U+2028, U+2029, U+0085 and other separators, which a JSON chunk may hold raw (vLLM's do: pydantic
    writes them unescaped): a token holding one broke its chunk in two, neither of them JSON."""
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        carry = "\r" if buffer.endswith("\r") else ""  # its "\n" may open the next piece of text
        *lines, rest = _SSE_LINE_END.split(buffer.removesuffix(carry))
        buffer = rest + carry
        for line in lines:
            yield line
    if buffer.removesuffix("\r"):
        yield buffer.removesuffix("\r")


async def _sse_events(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines, as the SSE spec says)."""
    data: list[str] = []
    async for line in _sse_lines(response):
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
