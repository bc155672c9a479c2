"""Runs ray_cases.py (a 2-node Ray cluster on loopback) in a network namespace of its own: outside one, Ray may
bind the machine's external interface even when asked for 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rag_testkit.tools import require_tool

HERE = Path(__file__).resolve().parent


def test_ray_cases_in_their_own_network_namespace() -> None:
    unshare = require_tool("unshare", "util-linux")
    ip = require_tool("ip", "iproute2")
    inner = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "python_files=*.py"]
    script = f"{ip} link set lo up && exec {' '.join(inner)} {HERE / 'ray_cases.py'}"
    done = subprocess.run(
        [unshare, "--net", "--", "sh", "-c", script],
        cwd=HERE.parents[1],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
