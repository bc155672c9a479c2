"""Real servers for tests: find a tool, installing its Debian package when missing (CI starts from nothing).

Outside CI a tool that cannot be had skips the test; under CI=true the conftest turns any skip into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

_APT_UPDATED = False


def require_tool(binary: str, apt_package: str) -> str:
    """Path of `binary`, installing `apt_package` (without recommends) if it is missing."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    require_packages(apt_package)
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        pytest.fail(f"installed {apt_package} but {binary} is still not on PATH")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    url: str,
    status: int = 200,
    timeout: float = 60.0,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.1,
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
        time.sleep(interval)
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


class TcpProxy:
    """A loopback TCP forwarder to a real server, for faults: not listening yet (the server is 'down'), or
    forwarding at a throttled rate (a slow download that a test can kill midway)."""

    def __init__(self, target_port: int, bytes_per_second: float | None = None) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.bytes_per_second = bytes_per_second
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self) -> None:
        server = self._server
        while server is not None and server.fileno() != -1:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b, throttle in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, throttle), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, throttle: bool) -> None:
        try:
            while data := source.recv(16384 if not (throttle and self.bytes_per_second) else 1024):
                sink.sendall(data)
                if throttle and self.bytes_per_second:
                    time.sleep(len(data) / self.bytes_per_second)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


class Prometheus:
    """A real Prometheus on loopback (the Debian package): scraping the service, or only parsing queries."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def format_query(self, expr: str) -> str:
        """The query as Prometheus prints it; a query that does not parse fails with Prometheus's error."""
        body = httpx.get(f"{self.url}/api/v1/format_query", params={"query": expr}, timeout=5).json()
        if body["status"] != "success":
            raise AssertionError(f"Prometheus cannot parse {expr!r}: {body.get('error')}")
        return str(body["data"])


@contextlib.contextmanager
def start_prometheus(
    workdir: Path, targets: Sequence[str] = (), labels: Mapping[str, str] | None = None
) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (host:port) every second as job "rag", with `labels` on every series as
    service discovery would attach them (namespace, pod); its data in `workdir`; stopped on exit."""
    binary = require_tool("prometheus", "prometheus")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    target = {"targets": list(targets), "labels": dict(labels or {})}
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + (
            "scrape_configs:\n"
            "  - job_name: rag\n"
            "    scrape_interval: 1s\n"
            "    scrape_timeout: 1s\n"
            f"    static_configs: [{json.dumps(target)}]\n"
            if targets
            else ""
        )
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready", timeout=30, process=process)
        yield Prometheus(process, port)
    finally:
        stop(process)


def require_packages(*packages: str) -> None:
    """Debian packages (tools that are not on PATH, such as podman's netavark), installed when missing."""
    global _APT_UPDATED
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"missing {', '.join(missing)}; installing needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _APT_UPDATED:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env, timeout=600)
        _APT_UPDATED = True
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        capture_output=True,
        env=env,
        timeout=1200,
    )
    # The downloaded .deb files are not needed once installed (2.4 GB of them had piled up here).
    subprocess.run(["apt-get", "clean"], check=True, capture_output=True, env=env, timeout=120)


def pytest_in_network_namespace(
    cases: Path, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest on `cases` inside a network namespace of its own (`unshare --net`), where loopback is the only
    interface: servers that listen on every interface, or advertise the host's address (Milvus 2.3, Ray),
    cannot reach past it. Asserts it passed, with nothing skipped."""
    unshare = require_tool("unshare", "util-linux")
    ip = require_tool("ip", "iproute2")
    inner = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "python_files=*.py"]
    script = f"{ip} link set lo up && exec {' '.join(inner)} {cases}"
    done = subprocess.run(
        [unshare, "--net", "--", "sh", "-c", script],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
    return done
