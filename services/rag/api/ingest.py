"""Ingestion job routes (off by default; `RAG_INGEST_ENABLED=true` and the admin key) and the live-bundle follower.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..errors import RagError
from ..files import write_json_atomic
from ..jobs.runner import JobRunner
from ..jobs.store import LIVE_FILE, Job, JobOptions
from .errors import ApiError, Forbidden
from .reload import load_beside
from .state import ServiceState

__all__ = ["IngestStart", "install_ingest"]

log = logging.getLogger("rag.api")


class IngestStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(
        min_length=1, max_length=4096, description="an absolute path on the server, or s3://bucket/prefix"
    )
    unit: Literal["sentence", "passage", "document"] | None = None
    dense_index: Literal["flat", "hnsw"] | None = None


class JobList(BaseModel):
    jobs: list[Job]


class Activated(BaseModel):
    job_id: str
    version: str
    changed: bool


class _Conflict(ApiError):
    """A job that cannot be made live; the store's own errors map to statuses in api/errors.py."""

    error_type = "job_conflict"
    status = 409


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

    def require(self) -> JobRunner:
        if self.runner is None:
            raise Forbidden("ingestion jobs are off: set RAG_INGEST_ENABLED=true")
        return self.runner

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Job store I/O off the event loop (its errors reach the client through api/errors.py)."""
        return await run_in_threadpool(fn, *args)

    async def activate(self, job_id: str) -> Activated:
        runner = self.require()
        job: Job = await self._call(lambda: runner.store.settle(runner.store.read(job_id)))
        if job.state != "succeeded" or job.bundle is None:
            raise _Conflict(f"job {job_id} is {job.state}: only a succeeded job can be made live")
        if not Path(job.bundle).is_dir():
            raise _Conflict(f"job {job_id}'s bundle was deleted (only the newest jobs' bundles are kept)")
        try:  # here first: a bundle that does not load (or fit the served models) is never published
            changed = await self._install(job)
        except RagError as exc:
            raise _Conflict(f"job {job_id}'s bundle cannot be served: {exc}") from None
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


def install_ingest(
    app: FastAPI, settings: Settings, state: ServiceState, admin_key: Callable[[Request], Awaitable[None]]
) -> None:
    """Register the /ingest routes and wrap the app's lifespan: recover jobs, follow live.json, and stop a
    running build at shutdown."""
    service = IngestService(settings, state)
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with original(app_) as inner:
            follower = None
            if service.runner is not None:
                for job in await run_in_threadpool(service.runner.recover):
                    log.warning("ingestion job interrupted", extra={"job": job.id, "reason": job.error})
                follower = asyncio.create_task(service.follow_forever())
            try:
                yield inner
            finally:
                if follower is not None:
                    follower.cancel()
                if service.runner is not None:
                    await run_in_threadpool(service.runner.shutdown)

    app.router.lifespan_context = lifespan
    guarded = [Depends(admin_key)]

    @app.post(
        "/ingest/start",
        status_code=202,
        response_model=Job,
        dependencies=guarded,
        summary="Start a build job",
    )
    async def ingest_start(body: IngestStart) -> Job:
        runner = service.require()
        options = JobOptions(unit=body.unit, dense_index=body.dense_index)
        job: Job = await service._call(runner.start, body.corpus, options)
        return job

    @app.get("/ingest/status/{job_id}", response_model=Job, dependencies=guarded, summary="A job's state")
    async def ingest_status(job_id: str) -> Job:
        runner = service.require()
        job: Job = await service._call(lambda: runner.store.settle(runner.store.read(job_id)))
        return job

    @app.get("/ingest/list", response_model=JobList, dependencies=guarded, summary="Every job, newest first")
    async def ingest_list() -> JobList:
        runner = service.require()
        jobs = await service._call(lambda: [runner.store.settle(j) for j in runner.store.jobs()])
        return JobList(jobs=jobs)

    @app.post(
        "/ingest/cancel/{job_id}",
        response_model=Job,
        dependencies=guarded,
        summary="Stop a queued or running job (it ends as failed: cancelled)",
    )
    async def ingest_cancel(job_id: str) -> Job:
        runner = service.require()
        job: Job = await service._call(runner.cancel, job_id)
        return job

    @app.post(
        "/ingest/activate/{job_id}",
        response_model=Activated,
        dependencies=guarded,
        summary="Serve a succeeded job's bundle (swapped between requests, on every worker)",
    )
    async def ingest_activate(job_id: str) -> JSONResponse:
        activated = await service.activate(job_id)
        return JSONResponse(activated.model_dump())
