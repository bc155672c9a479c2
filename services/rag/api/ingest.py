"""Ingestion jobs behind the /ingest routes (api/routes/ingest.py; off by default; `RAG_INGEST_ENABLED=true` and the admin key) and the live-bundle follower.

- `POST /ingest/start` {corpus, unit?, dense_index?} → 202 and the job (queued); 409 while another job is
  queued or running on this node (one at a time), 422 for a corpus the server cannot read.
- `GET /ingest/status/{id}` → the job: state, stage, done/total, progress 0..1, counts, error.
- `GET /ingest/list` → every job, newest first.
- `POST /ingest/cancel/{id}` → stop a queued or running job (any worker can: it signals the build process);
  the job ends as failed, `error` saying it was cancelled. 409 for a finished job.
- `POST /ingest/activate/{id}` → serve the job's bundle. The worker that gets the request loads and warms it
  beside the current one and swaps between requests (the hot-reload swap path, `reload.load_beside`), and
  only then records it in `<ingest_dir>/live.json`; every other worker follows within
  `RAG_INGEST_POLL_SECONDS`, and a restarted server serves it again.

A restart interrupts a running job: it ends as failed, with the reason in `error`; it is not resumed (start
it again: the embedding cache, RAG_EMBEDDING_CACHE, keeps what was embedded). See jobs/store.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..config import DenseKind, Settings, Unit
from ..errors import Forbidden, JobConflict, RagError
from ..files import write_json_atomic
from ..jobs.runner import JobRunner
from ..jobs.store import LIVE_FILE, Job
from .reload import load_beside
from .state import ServiceState

__all__ = ["Activated", "IngestService", "IngestStart", "JobList"]

log = logging.getLogger("rag.api")


class IngestStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(
        min_length=1, max_length=4096, description="an absolute path on the server, or s3://bucket/prefix"
    )
    unit: Unit | None = None
    dense_index: DenseKind | None = None


class JobList(BaseModel):
    jobs: list[Job]


class Activated(BaseModel):
    job_id: str
    version: str
    changed: bool


def _version(job_id: str) -> str:
    return f"ingest-{job_id}"


class IngestService:
    def __init__(self, settings: Settings, state: ServiceState) -> None:
        self.settings = settings
        self.state = state
        self.runner = JobRunner(Path(settings.ingest_dir), settings) if settings.ingest_enabled else None
        self.rejected: dict[str, str] = {}
        # The job this worker last installed from live.json: it follows CHANGES of the file, so a hot reload
        # to a channel version afterwards is not undone (the latest swap wins, whichever path made it).
        self.followed: str | None = None
        self._lock = asyncio.Lock()
        self._follower: asyncio.Task[None] | None = None

    def require(self) -> JobRunner:
        if self.runner is None:
            raise Forbidden("ingestion jobs are off: set RAG_INGEST_ENABLED=true")
        return self.runner

    async def start(self) -> None:
        """At startup: jobs a restart interrupted are marked failed; the live bundle is followed."""
        if self.runner is None:
            return
        for job in await run_in_threadpool(self.runner.recover):
            log.warning("ingestion job interrupted", extra={"job": job.id, "reason": job.error})
        self._follower = asyncio.create_task(self.follow_forever())

    async def stop(self) -> None:
        """At shutdown: stop following, and stop a running build (it ends as failed: interrupted)."""
        if self._follower is not None:
            self._follower.cancel()
        if self.runner is not None:
            await run_in_threadpool(self.runner.shutdown)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Job store I/O off the event loop (its errors reach the client through api/errors.py)."""
        return await run_in_threadpool(fn, *args)

    async def activate(self, job_id: str) -> Activated:
        runner = self.require()
        job: Job = await self.call(lambda: runner.store.settle(runner.store.read(job_id)))
        if job.state != "succeeded" or job.bundle is None:
            raise JobConflict(f"job {job_id} is {job.state}: only a succeeded job can be made live")
        if not Path(job.bundle).is_dir():
            raise JobConflict(f"job {job_id}'s bundle was deleted (only the newest jobs' bundles are kept)")
        try:  # here first: a bundle that does not load (or fit the served models) is never published
            changed = await self._install(job)
        except RagError as exc:
            raise JobConflict(f"job {job_id}'s bundle cannot be served: {exc}") from None
        await run_in_threadpool(
            write_json_atomic, runner.store.root / LIVE_FILE, {"job_id": job.id, "bundle": job.bundle}
        )
        return Activated(job_id=job.id, version=_version(job.id), changed=changed)

    async def _install(self, job: Job) -> bool:
        assert job.bundle is not None
        async with self._lock:
            version = _version(job.id)
            if self.state.version == version:
                self.followed = job.id
                return False
            old = self.state.require_pipeline()
            try:
                pipeline = await asyncio.get_running_loop().run_in_executor(
                    None, load_beside, self.settings, old, Path(job.bundle)
                )
            except RagError as exc:
                self.rejected[job.id] = str(exc)
                raise
            self.state.install(pipeline, version)  # on the loop thread: between requests
            self.followed = job.id
            log.info("serving an ingestion job's bundle", extra={"version": version, "job": job.id})
            return True

    async def follow_forever(self) -> None:
        """Serve whatever job `live.json` names (another worker activated it, or before a restart)."""
        assert self.runner is not None
        live = self.runner.store.root / LIVE_FILE
        while True:
            if self.state.pipeline is not None and not self.state.draining and live.is_file():
                try:
                    record = json.loads(await run_in_threadpool(live.read_text, "utf-8"))
                    job_id = str(record["job_id"])
                    if job_id not in self.rejected and job_id != self.followed:
                        await self._install(self.runner.store.read(job_id))
                except (OSError, ValueError, KeyError, RagError) as exc:
                    log.error("cannot follow the live ingestion bundle: %s", exc)
            await asyncio.sleep(self.settings.ingest_poll_seconds)
