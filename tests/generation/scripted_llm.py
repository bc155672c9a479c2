"""The scripted OpenAI-compatible server (openai_server.py) as a process, and a handle on its script."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

SERVER = Path(__file__).with_name("openai_server.py")
API_KEY = "llm-s3cret"


class ScriptedLlm:
    """Handle on the scripted OpenAI-compatible server process (tests/generation/openai_server.py)."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.base_url = f"{url}/v1"
        self.process = process

    def script(
        self,
        queue: list[dict[str, Any]] | None = None,
        rules: list[dict[str, Any]] | None = None,
        default: dict[str, Any] | None = None,
    ) -> None:
        spec = {"queue": queue or [], "rules": rules or [], "default": default}
        httpx.post(f"{self.url}/_control/script", json=spec, timeout=5).raise_for_status()

    def calls(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/_control/calls", timeout=5).json()
        return list(body["calls"])


# An extractive /answer body has exactly these keys: with generation off, or not asked for, nothing is added.
EXTRACTIVE_KEYS = {
    "question",
    "answer",
    "abstained",
    "reason",
    "confidence",
    "evidence",
    "timings_ms",
    "corpus_id",
    "cache",
    "request_id",
}
