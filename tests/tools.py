"""Real servers for tests: find a tool, installing its Debian package when missing (CI starts from nothing).

Outside CI a tool that cannot be had skips the test; under CI=true the conftest turns any skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

_APT_UPDATED = False


def require_tool(binary: str, apt_package: str) -> str:
    """Path of `binary`, installing `apt_package` (without recommends) if it is missing."""
    global _APT_UPDATED
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{binary} is missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _APT_UPDATED:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env, timeout=600)
        _APT_UPDATED = True
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", apt_package],
        check=True,
        capture_output=True,
        env=env,
        timeout=900,
    )
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        pytest.fail(f"installed {apt_package} but {binary} is still not on PATH")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    url: str, status: int = 200, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == status:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout:g} s (last: {last})")


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class Gunicorn:
    """One real service instance: gunicorn master + uvicorn workers on a loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, metrics_dir: Path, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.metrics_dir = metrics_dir
        self.log = log

    def workers(self) -> list[int]:
        return children(self.process.pid)


Started = Callable[..., Gunicorn]
