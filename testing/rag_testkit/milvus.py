"""A real Milvus engine on loopback for tests: milvus-lite's server binary (the Milvus C++ core), started the
way a pod reaches a Milvus server, over gRPC on a TCP port.

milvus-lite comes with pymilvus (the project's `milvus` extra, pinned 2.5.1 in constraints.txt). Its Python
module is never imported: it needs `pkg_resources`, which setuptools 80 removed; the binary needs only its
bundled libraries. Version 2.5.1 runs the 2.5 engine (BM25 functions, JSON filters); it implements no aliases
and no `not` over an expression — the tests say where that matters.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .tools import free_port

__all__ = ["MilvusLite", "milvus_lite_binary"]


def milvus_lite_binary() -> Path:
    spec = importlib.util.find_spec("milvus_lite")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("milvus-lite is not installed (make install: the `milvus` extra pulls it with pymilvus)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "lib" / "milvus"
    if not binary.is_file():
        pytest.fail(f"milvus-lite has no server binary at {binary}")
    return binary


class MilvusLite:
    """One engine process over a data file in `folder`; `kill` and `start` again keep the data."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 60.0) -> MilvusLite:
        binary = milvus_lite_binary()
        env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
        with (self.folder / "milvus.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(binary), str(self.folder / "milvus.db"), f"127.0.0.1:{self.port}", "ERROR"],
                env=env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"milvus-lite exited with {self.process.returncode}: {self.log_tail()}")
            try:
                client = MilvusClient(uri=self.uri, timeout=2)
                client.list_collections()
                client.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"milvus-lite did not answer within {timeout} s: {self.log_tail()}"
                    ) from None
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as an engine dies mid-request: no goodbye to its clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def log_tail(self) -> str:
        path = self.folder / "milvus.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class MilvusServer235:
    """A Milvus 2.3.5 standalone server (PyPI `milvus`, the dev extra: the real server binary with embedded
    etcd and local storage) on loopback. It has what milvus-lite lacks, aliases, and lacks what 2.5 added,
    BM25: the tests of channels (aliases) and of RAG_MILVUS_BM25=false run on it."""

    def __init__(self, folder: Path) -> None:
        from milvus import MilvusServer  # type: ignore[import-untyped]

        self.server = MilvusServer()
        self.server.set_base_dir(str(folder))
        self.server.listen_port = free_port()
        self.uri = f"http://127.0.0.1:{self.server.listen_port}"

    def start(self) -> MilvusServer235:
        import warnings

        with warnings.catch_warnings():  # its launcher leaves the sockets it probed ports with to the GC
            warnings.simplefilter("ignore", ResourceWarning)
            self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
