"""The server's side of ingestion jobs: start one (one at a time per node), watch it, stop it at shutdown.

Every gunicorn worker has a runner over the same jobs directory; the file lock makes "is a job active? if not,
create one" atomic across them. The worker that started a job is the build process's parent: it reaps the
process and, at shutdown, stops it (the job then ends as failed: interrupted — jobs are not resumed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import Settings, child_environment
from ..corpus import SUPPORTED_SUFFIXES
from ..errors import BadCorpus, JobBusy, JobNotActive
from .store import ACTIVE, LIVE_FILE, Job, JobOptions, JobStore, utc_now

log = logging.getLogger(__name__)

__all__ = [
    "CANCELLED",
    "KEEP_BUNDLES",
    "BadCorpus",
    "JobBusy",
    "JobNotActive",
    "JobRunner",
    "check_corpus",
    "live_job_id",
]

CANCELLED = "cancelled: stopped by POST /ingest/cancel"

# A cancelled build that has not stopped by then is killed (POST /ingest/cancel answers within its timeout).
CANCEL_GRACE_SECONDS = 5.0
KEEP_BUNDLES = 3  # finished jobs whose bundles are kept (besides the live one); older ones are deleted


def live_job_id(root: Path) -> str | None:
    """The job `live.json` names (the bundle the workers serve), if any."""
    try:
        return str(json.loads((root / LIVE_FILE).read_text(encoding="utf-8"))["job_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class JobRunner:
    def __init__(self, root: Path, settings: Settings | None = None) -> None:
        self.store = JobStore(root)
        self.settings = settings
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def recover(self) -> list[Job]:
        """At startup: active records whose build process is gone end as failed. What was settled."""
        settled = []
        for job in self.store.jobs():
            if job.state in ACTIVE:
                after = self.store.settle(job)
                if after.state not in ACTIVE:
                    settled.append(after)
        return settled

    def start(self, corpus: str, options: JobOptions) -> Job:
        """Queue a job and start its build process; JobBusy while another job is active on this node."""
        check_corpus(corpus, self.settings.ingest_roots if self.settings else ())
        with self.store.lock():
            active = self.store.active()
            if active:
                raise JobBusy(f"job {active[0].id} is {active[0].state}: one job at a time on this node")
            self.prune()
            job = self.store.create(corpus, options)
            with self.store.log_path(job.id).open("ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "rag.jobs.builder", str(self.store.root), job.id],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=child_environment(self.settings),
                )
            job = self.store.update(job.id, pid=process.pid)
        with self._lock:
            self._processes[job.id] = process
        threading.Thread(
            target=self._reap, args=(job.id, process), name="rag-job-reaper", daemon=True
        ).start()
        return job

    def cancel(self, job_id: str, timeout: float = 10.0) -> Job:
        """Stop an active job's build process, whichever worker started it; the job ends as failed with the
        reason `cancelled`. JobNotActive for a finished one."""
        job = self.store.settle(self.store.read(job_id))
        if job.state not in ACTIVE:
            raise JobNotActive(f"job {job_id} is {job.state}: only a queued or running job can be cancelled")
        grace = min(CANCEL_GRACE_SECONDS, timeout / 2)
        job = self._signal_and_wait(job, signal.SIGUSR1, grace)  # the builder records why and exits
        pid = job.pid
        if job.state in ACTIVE and pid is not None and _is_builder(pid, job_id):
            # Still running: stuck in native code, or deadlocked by the exception the signal raised inside a
            # lock. Say why first, so the record does not depend on who notices the process is gone.
            log.warning("job %s did not stop within %.0f s of its cancel: killed", job_id, grace)
            job = self.store.update(job_id, state="failed", finished_at=utc_now(), error=CANCELLED)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if job.state in ACTIVE:  # gone before it could say so, or never started
            job = self.store.settle(job, reason=CANCELLED)
        return job

    def _signal_and_wait(self, job: Job, signum: int, seconds: float) -> Job:
        """Send `signum` to the job's build process; the job once it is no longer active, or its process gone,
        or `seconds` passed."""
        if job.pid is not None and _is_builder(job.pid, job.id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signum)
        deadline = time.monotonic() + seconds
        while (job := self.store.read(job.id)).state in ACTIVE and time.monotonic() < deadline:
            if job.pid is None or not _is_builder(job.pid, job.id):
                break
            time.sleep(0.1)
        return job

    def prune(self, keep: int = KEEP_BUNDLES) -> list[str]:
        """Delete the work folders (bundle, downloaded corpus) of finished jobs past the newest `keep`, never
        the live one: a node that ingests daily must not fill its disk. Records stay (history)."""
        live = live_job_id(self.store.root)
        pruned = []
        finished = [j for j in self.store.jobs() if j.state not in ACTIVE]
        for job in finished[keep:]:
            folder = self.store.work_dir(job.id)
            if job.id != live and folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
                pruned.append(job.id)
        return pruned

    def _reap(self, job_id: str, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        with self._lock:
            self._processes.pop(job_id, None)
        job = self.store.read(job_id)
        if job.state in ACTIVE:  # died without saying why (killed, out of memory)
            self.store.settle(job, reason=f"the build process exited with code {code} before it finished")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the build processes this worker started; their jobs end as failed (interrupted)."""
        with self._lock:
            running = list(self._processes.items())
        for _, process in running:
            process.terminate()
        for job_id, process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            self.store.settle(
                self.store.read(job_id),
                reason="interrupted: the server shut down while the job ran; jobs are not resumed: start it again",
            )


def _is_builder(pid: int, job_id: str) -> bool:
    """Is `pid` this job's build process (and not a process that reused its pid)?"""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"rag.jobs.builder" in command and job_id.encode() in command


# S3's bucket naming rules: a name that breaks them can never be read, so it fails at once, not after retries.
_BUCKET = re.compile(r"^(?!xn--|sthree-)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_corpus(corpus: str, roots: Sequence[Path]) -> Path | None:
    """BadCorpus unless the server may read `corpus`: s3://bucket/prefix with a valid bucket name, or a local
    path whose real location (links resolved) is inside one of `roots` (RAG_INGEST_ROOTS). The resolved local
    path, or None for S3."""
    if corpus.startswith("s3://"):
        bucket = corpus[5:].split("/", 1)[0]
        if not _BUCKET.match(bucket):
            raise BadCorpus(f"not a valid S3 bucket name: {bucket!r} (s3://bucket/prefix)")
        return None
    path = Path(corpus)
    if not path.is_absolute():
        raise BadCorpus("give the corpus as an absolute path on the server, or s3://bucket/prefix")
    if not roots:
        raise BadCorpus(
            "local corpora are off on this server: RAG_INGEST_ROOTS names the folders ingestion may read "
            "(or give s3://bucket/prefix)"
        )
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        raise BadCorpus(f"{corpus} is outside the folders ingestion may read (RAG_INGEST_ROOTS)")
    if not resolved.exists():
        raise BadCorpus(f"corpus not found on the server: {corpus}")
    if resolved.is_file() and resolved.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise BadCorpus(f"{corpus}: not a supported file type ({', '.join(SUPPORTED_SUFFIXES)})")
    return resolved
