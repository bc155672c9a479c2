"""POST /ingest/cancel ends a job within its timeout, even when the build cannot take the signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from rag.jobs.runner import CANCELLED, JobRunner
from rag.jobs.store import JobOptions, JobStore, utc_now

# A stand-in for a build stuck where the cancel's SIGUSR1 cannot reach Python (native code, or a deadlock the
# exception it raises caused): it ignores the signal, and it is named as a build process is.
STUCK = "import signal, time; signal.signal(signal.SIGUSR1, signal.SIG_IGN); print('up', flush=True); time.sleep(120)"


def test_a_build_that_ignores_its_cancel_is_killed_and_the_job_says_cancelled(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    store = JobStore(root)
    job = store.create("corpus", JobOptions())
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK, "rag.jobs.builder", str(root), job.id], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        store.update(job.id, state="running", pid=process.pid, started_at=utc_now())
        started = time.monotonic()
        cancelled = JobRunner(root).cancel(job.id, timeout=4.0)
        assert time.monotonic() - started < 4.5
        assert (cancelled.state, cancelled.error) == ("failed", CANCELLED)
        assert process.wait(timeout=5) == -signal.SIGKILL
        assert store.read(job.id).error == CANCELLED
    finally:
        process.kill()
        process.communicate()
