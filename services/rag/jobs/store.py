"""Ingestion job records: one JSON file per job under the jobs directory, each write atomic (temp + rename).

Who writes a record: the server creates it (queued) and the build process owns it while it lives (running,
progress, heartbeat, then succeeded | failed). When the build process is gone but the record still says
queued/running — the server was restarted or the process crashed — the next reader settles it as failed with
the reason (`settle`); jobs are not resumed (a rebuild with the embedding cache redoes the finished part
cheaply). A file lock (`lock`) serialises the read-modify-write of records across workers and processes.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import DenseKind, Unit
from ..errors import UnknownJob
from ..files import write_json_atomic

__all__ = [
    "ACTIVE",
    "LIVE_FILE",
    "Job",
    "JobOptions",
    "JobState",
    "JobStore",
    "UnknownJob",
    "new_job_id",
    "utc_now",
]

JobState = Literal["queued", "running", "succeeded", "failed"]
ACTIVE: tuple[JobState, ...] = ("queued", "running")
LIVE_FILE = "live.json"  # which job's bundle the workers should serve (written by activation)
STALE_SECONDS = 30.0  # a build process that has not beaten its heart for this long is taken for dead
_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")  # exactly what new_job_id makes: never a path or live.json
# Share of the whole job each stage stands for in `progress` (embedding dominates a cold build).
_STAGE_SPAN = {"load": (0.0, 0.05), "segment": (0.05, 0.1), "embed": (0.1, 0.9), "index": (0.9, 1.0)}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_job_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


MAX_JOB_WARNINGS = 50  # a job record is rewritten at every progress report: it stays small


class JobOptions(BaseModel):
    """Build options a job may set; the rest come from the server's RAG_* settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Unit | None = None
    dense_index: DenseKind | None = None


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    state: JobState
    corpus: str = Field(description="a local path on the server, or s3://bucket/prefix")
    options: JobOptions = JobOptions()
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    stage: str | None = Field(None, description="load | segment | embed | index (while running)")
    done: int = Field(0, description="items done in the current stage")
    total: int = Field(0, description="items in the current stage")
    progress: float = Field(0.0, ge=0.0, le=1.0, description="the whole job, 0..1")
    counts: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(
        default_factory=list,
        description="what loading the corpus skipped or repaired, as `rag build` prints it (succeeded; at "
        f"most {MAX_JOB_WARNINGS} lines: the bundle's manifest.json lists every skipped file)",
    )
    error: str | None = None
    bundle: str | None = Field(None, description="the bundle the job built (succeeded)")
    corpus_id: str | None = None
    pid: int | None = Field(None, description="the build process")
    heartbeat: float | None = Field(None, description="unix time the build process last reported")

    def at(self, stage: str, done: int, total: int) -> dict[str, Any]:
        """The fields a progress report changes."""
        low, high = _STAGE_SPAN.get(stage, (0.0, 1.0))
        share = done / total if total else 1.0
        return {
            "stage": stage,
            "done": done,
            "total": total,
            "progress": round(low + (high - low) * min(share, 1.0), 4),
            "heartbeat": time.time(),
        }


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    try:  # an exited child its parent has not reaped yet is a zombie: not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._handle: IO[str] | None = None

    def path(self, job_id: str) -> Path:
        if not _ID.match(job_id):  # ids come from URLs: never a path
            raise UnknownJob(f"no job {job_id!r}")
        return self.root / f"{job_id}.json"

    def log_path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.log"

    def work_dir(self, job_id: str) -> Path:
        return self.root / job_id

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes (flock) and threads; re-entrant within one thread (a second flock on a
        new descriptor in the same process would wait for itself)."""
        with self._thread_lock:
            if self._depth == 0:
                self._handle = (self.root / ".lock").open("a")
                fcntl.flock(self._handle, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._handle is not None:
                    fcntl.flock(self._handle, fcntl.LOCK_UN)
                    self._handle.close()
                    self._handle = None

    def read(self, job_id: str) -> Job:
        path = self.path(job_id)
        try:
            return Job.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnknownJob(f"no job {job_id!r}") from None

    def write(self, job: Job) -> None:
        write_json_atomic(self.path(job.id), job.model_dump(mode="json"))

    def update(self, job_id: str, **changes: Any) -> Job:
        with self.lock():
            job = self.read(job_id).model_copy(update=changes)
            self.write(job)
        return job

    def create(self, corpus: str, options: JobOptions) -> Job:
        job = Job(id=new_job_id(), state="queued", corpus=corpus, options=options, created_at=utc_now())
        self.write(job)
        return job

    def jobs(self) -> list[Job]:
        jobs = []
        for path in self.root.glob("*.json"):
            if path.name == LIVE_FILE or path.name.startswith("."):
                continue
            try:
                jobs.append(Job.model_validate_json(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # a foreign or damaged file is not a job
        return sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)

    def settle(self, job: Job, reason: str | None = None) -> Job:
        """The job as it really is: an active record whose build process is gone becomes failed."""
        if job.state not in ACTIVE or self._alive(job):
            return job
        with self.lock():
            current = self.read(job.id)  # it may have finished meanwhile
            if current.state not in ACTIVE or self._alive(current):
                return current
            failed = current.model_copy(
                update={
                    "state": "failed",
                    "finished_at": utc_now(),
                    "error": reason
                    or "interrupted: its build process is gone (the server restarted or the process crashed); "
                    "jobs are not resumed: start it again (the embedding cache keeps what was embedded)",
                }
            )
            self.write(failed)
            return failed

    @staticmethod
    def _alive(job: Job) -> bool:
        if job.pid is None:  # queued, build process not started yet: give the starter a moment
            started = datetime.fromisoformat(job.created_at).timestamp()
            return time.time() - started < STALE_SECONDS
        if not _process_alive(job.pid):
            return False
        return job.heartbeat is None or time.time() - job.heartbeat < STALE_SECONDS

    def active(self) -> list[Job]:
        return [job for job in (self.settle(j) for j in self.jobs()) if job.state in ACTIVE]
