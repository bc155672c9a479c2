"""A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol: load a page, type,
click, read the DOM. No Selenium or Playwright (their browsers download from the internet)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .tools import require_tool, stop

__all__ = ["Page", "chromium"]


class Page:
    """One tab. `evaluate` runs JavaScript in it and returns the (JSON) value."""

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && document.getElementById('ask') !== null")

    def wait_for(self, condition: str, timeout: float = 60.0) -> Any:
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(condition)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"never true within {timeout:.0f} s: {condition}")


@contextmanager
def chromium() -> Iterator[Page]:
    """A headless Chromium on loopback with a fresh profile, and its first tab."""
    from websockets.sync.client import connect

    binary = require_tool("chromium", "chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip
        try:
            port = _devtools_port(Path(profile), process, log)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            tab = next(t for t in targets if t["type"] == "page")
            with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as websocket:
                page = Page(websocket)
                page.send("Page.enable")
                yield page
        finally:
            stop(process)  # type: ignore[arg-type]


def _devtools_port(profile: Path, process: subprocess.Popen[str], log: Any) -> int:
    """Chromium writes the port it picked into the profile's DevToolsActivePort file."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"chromium exited: {log.read()[-2000:]}")
        found = profile / "DevToolsActivePort"
        if found.exists() and re.match(r"\d+", text := found.read_text()):
            return int(text.splitlines()[0])
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 60 s")
