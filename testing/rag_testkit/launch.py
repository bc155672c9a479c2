"""Start the service the way users start it: the one launcher of every test and benchmark that runs a server.

`make_run` is the README's `make run`, through the Makefile's own command line, from the environment a user's
shell has: this machine's, less every project setting (`RAG_*`), Prometheus', Hugging Face's and the test
runner's variables. So the server gets exactly what `make run` gives it, and nothing a test forgot to remove.
The image and the chart's pod are started by `rag_testkit.containers.run_container` with the same rule.

What a test may add is named: `bundle=` (the Makefile's SAMPLE_BUNDLE, i.e. RAG_BUNDLE_DIR) and `env=`, each
variable a non-default setting the test is about (tiny models, an API key, a low max_requests). The port is
the one thing every start chooses for itself (RAG_BIND), since tests run side by side.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .samples import ROOT
from .tools import children, free_port, wait_for

__all__ = ["Service", "Started", "make_run", "user_environment"]

# Set by this project, by the test runner or by tools the tests drive; a user's shell has none of them.
_NOT_A_USERS = ("RAG_", "PROMETHEUS_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "PYTEST_", "AWS_", "MAKE")
_NOT_A_USERS_EXACT = {"MFLAGS", "CI", "COV_CORE_SOURCE", "COV_CORE_CONFIG", "COV_CORE_DATAFILE"}


def user_environment() -> dict[str, str]:
    """This machine's environment as a user's shell has it: PATH, HOME, locale, CPU quirks (OPENBLAS_*)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_NOT_A_USERS) and name not in _NOT_A_USERS_EXACT
    }


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


class Service:
    """One running service: `make run`'s process tree (make → gunicorn master → uvicorn workers)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def master(self, timeout: float = 30.0) -> int:
        """The gunicorn master's pid (the shallowest gunicorn process under make)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            level = [self.process.pid]
            while level:
                found = [pid for pid in level if any("gunicorn" in part for part in _cmdline(pid))]
                if found:
                    return found[0]
                level = [child for pid in level for child in children(pid)]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no gunicorn under `make run` (pid {self.process.pid}):\n{self.tail()}")

    def workers(self) -> list[int]:
        return children(self.master())

    def metrics_dir(self) -> Path:
        """Where this service's Prometheus multiprocess files are: the config logs the folder it chose."""
        found = re.search(r"metrics_dir=(\S+?)\"", self.log.read_text())
        assert found, f"gunicorn logged no metrics_dir:\n{self.tail()}"
        return Path(found[1])

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to make, which passes it to gunicorn and waits for it; then nothing of the tree is left."""
        master = None
        if self.process.poll() is None:
            try:
                master = self.master(timeout=0)
            except AssertionError:
                master = None
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        deadline = time.monotonic() + timeout
        while master is not None and _alive(master) and time.monotonic() < deadline:
            time.sleep(0.05)
        if master is not None and _alive(master):
            os.killpg(self.process.pid, signal.SIGKILL)


Started = Callable[..., Service]


def make_run(
    workdir: Path,
    *,
    bundle: Path | None = None,
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float = 120.0,
    port: int | None = None,
) -> Service:
    """`make run` on a loopback port (a free one unless given: a restart takes its predecessor's). With
    `bundle`, that bundle is served as it is (make does not rebuild it); without, the Makefile builds its
    sample bundle if needed, as for a user."""
    port = port or free_port()
    argv = ["make", "--no-print-directory", "-C", str(ROOT), "run"]
    if bundle is not None:
        argv += [f"SAMPLE_BUNDLE={bundle}", "-o", f"{bundle}/manifest.json"]
    environment = {**user_environment(), **(env or {}), "RAG_BIND": f"127.0.0.1:{port}"}
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    service = Service(process, port, log)
    if wait_ready:
        try:
            wait_for(f"{service.url}/ready", 200, timeout=timeout, process=process)
        except AssertionError:
            print(service.tail())
            service.stop()
            raise
    return service
