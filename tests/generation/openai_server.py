"""A small OpenAI-compatible inference server that returns scripted completions: the tests' honest double
(no LLM weights can be had here), run as a real process on loopback.

    python tests/generation/openai_server.py --port 8123 [--api-key KEY] [--rules rules.json]

Protocol, as vLLM / llama.cpp / OpenAI speak it:
  POST /v1/chat/completions   {model, messages, stream?, stream_options?, max_tokens?, response_format?, ...}
    not streamed → 200 application/json  {id, object: "chat.completion", created, model,
                                          choices: [{index, message: {role, content}, finish_reason}], usage}
    streamed     → 200 text/event-stream, chunked: `data: {chat.completion.chunk}` per delta (the first with
                   the role), a last chunk with finish_reason, a usage chunk (choices: []) when
                   stream_options.include_usage, then `data: [DONE]`
    errors       → {"error": {message, type, code}} with the status
  GET /v1/models
With --api-key, /v1/* needs `Authorization: Bearer KEY` (401 otherwise).

Scripting (not part of the protocol): each completion request takes the first behaviour of the queue; with
the queue empty, the first rule whose `contains` occurs in the prompt (all message contents joined); else the
default, a 400 "unscripted". A behaviour is a JSON object:
  {"content": "text", "chunks": ["te", "xt"]?}  answer (streamed as `chunks`, else word by word)
  {"status": 500}                               error status
  {"drop": true}                                close the connection without answering
  {"drop_after": 2}                             streamed: close after 2 content chunks (no [DONE])
  {"delay": 1.5}                                wait before answering (with any of the above)
  {"chunk_delay": 0.2}                          streamed: wait between chunks
  POST /_control/script {"queue": [...], "rules": [...], "default": {...}}   replace the script, forget calls
  GET  /_control/calls                          every completion request received: {"calls": [{body, auth}]}
  GET  /_control/health                         200 (no auth)
--rules FILE loads {"rules": [...]} at start (the expansion benchmark's scripted paraphrases).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

UNSCRIPTED: dict[str, Any] = {"status": 400, "message": "unscripted request"}


class Script:
    def __init__(self, rules: list[dict[str, Any]] | None = None) -> None:
        self.lock = threading.Lock()
        self.queue: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = rules or []
        self.default: dict[str, Any] = UNSCRIPTED
        self.calls: list[dict[str, Any]] = []

    def replace(self, spec: dict[str, Any]) -> None:
        with self.lock:
            self.queue = list(spec.get("queue", []))
            self.rules = list(spec.get("rules", []))
            self.default = spec.get("default") or UNSCRIPTED
            self.calls = []

    def next(self, body: dict[str, Any], auth: str | None) -> dict[str, Any]:
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict))
        with self.lock:
            self.calls.append({"body": body, "auth": auth})
            if self.queue:
                return self.queue.pop(0)
            for rule in self.rules:
                if rule.get("contains", "") in prompt:
                    return rule
            return self.default


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as real servers
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ---- plumbing ----------------------------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _authorised(self) -> bool:
        key = self.server.api_key
        if key is None or self.headers.get("authorization") == f"Bearer {key}":
            return True
        self._error(401, "invalid api key")
        return False

    # ---- routes ------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/_control/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/_control/calls":
            with self.server.script.lock:
                self._json(200, {"calls": list(self.server.script.calls)})
        elif self.path == "/v1/models":
            if self._authorised():
                self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "body is not JSON")
            return
        if self.path == "/_control/script":
            self.server.script.replace(body)
            self._json(200, {"ok": True})
        elif self.path == "/v1/chat/completions":
            if self._authorised():
                try:
                    self._complete(body)
                except OSError:  # the client gave up first (its timeout): nothing left to answer
                    self.close_connection = True
        else:
            self._error(404, f"no route {self.path}")

    def _complete(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            self._error(400, "model and messages are required")
            return
        behaviour = self.server.script.next(body, self.headers.get("authorization"))
        time.sleep(float(behaviour.get("delay", 0)))
        if behaviour.get("drop"):
            self._drop()
            return
        if "status" in behaviour:
            self._error(int(behaviour["status"]), str(behaviour.get("message", "scripted failure")))
            return
        content = str(behaviour.get("content", "".join(behaviour.get("chunks", []))))
        prompt_tokens = sum(_tokens(str(m.get("content", ""))) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _tokens(content),
            "total_tokens": prompt_tokens + _tokens(content),
        }
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": body["model"],
        }
        if body.get("stream"):
            self._stream(body, behaviour, head, content, usage)
            return
        self._json(
            200,
            {
                **head,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )

    def _stream(
        self,
        body: dict[str, Any],
        behaviour: dict[str, Any],
        head: dict[str, Any],
        content: str,
        usage: dict[str, int],
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            # as vLLM writes them (pydantic's JSON): non-ASCII raw, U+2028 and U+0085 included
            self._chunk(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())

        try:
            event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            pieces = behaviour.get("chunks") or _words(content)
            drop_after = behaviour.get("drop_after")
            for i, piece in enumerate(pieces):
                if drop_after is not None and i == int(drop_after):
                    self._drop()
                    return
                time.sleep(float(behaviour.get("chunk_delay", 0)))
                event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if (body.get("stream_options") or {}).get("include_usage"):
                event([], usage=usage)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")  # the zero-length chunk that ends the body
        except OSError:  # the client went away (a timeout on its side)
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, api_key: str | None, script: Script) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.api_key = api_key
        self.script = script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--rules", type=Path, help="JSON file {rules: [...]} loaded at start")
    args = parser.parse_args()
    rules = json.loads(args.rules.read_text())["rules"] if args.rules else None
    Server(args.port, args.api_key, Script(rules)).serve_forever()


if __name__ == "__main__":
    main()
