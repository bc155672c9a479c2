"""A Ray cluster of real nodes on loopback (`ray start --block`, one process group per node, stopped by its
PID). Start it only inside a network namespace of its own (`unshare --net`): outside one, Ray may bind the
machine's external interface even when asked for 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .tools import free_port

__all__ = ["LoopbackCluster", "RayNode"]

RAY = str(Path(sys.executable).parent / "ray")


class RayNode:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [RAY, "start", "--block", "--disable-usage-stats", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


class LoopbackCluster:
    """A head with `head_cpus` (2: with 1 CPU per node Ray Data's own tasks and the actor pool deadlock) and
    one worker node per entry of `worker_cpus`."""

    def __init__(self, root: Path, head_cpus: int = 2, worker_cpus: tuple[int, ...] = (1,)) -> None:
        self.root = root
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.address = f"127.0.0.1:{free_port()}"
        self.nodes: list[RayNode] = []
        # Ray's sockets live under its temp dir, and a Unix socket path holds at most 107 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))

    def start(self) -> LoopbackCluster:
        port = self.address.rsplit(":", 1)[1]
        self.root.mkdir(parents=True, exist_ok=True)
        head = RayNode(
            ["--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={self.head_cpus}",
             "--include-dashboard=false", f"--temp-dir={self.temp}"],
            self.root / "head.log",
        )  # fmt: skip
        self.nodes.append(head)
        try:
            self._wait(1, head)
            for i, cpus in enumerate(self.worker_cpus):
                args = ["--address", self.address, "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"]
                worker = RayNode(args, self.root / f"worker-{i}.log")
                self.nodes.append(worker)
                self._wait(2 + i, worker)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp, ignore_errors=True)

    def _wait(self, n: int, node: RayNode, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [RAY, "status", f"--address={self.address}"], capture_output=True, text=True, timeout=60
            )
            if done.returncode == 0 and done.stdout.count("node_") >= n:
                return
            assert node.process.poll() is None, node.log.read_text()[-3000:]
            assert time.monotonic() < deadline, done.stdout + done.stderr + node.log.read_text()[-3000:]
            time.sleep(1)
