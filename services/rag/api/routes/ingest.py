"""`/ingest/*`: build jobs and making their bundles live (off unless RAG_INGEST_ENABLED; admin key).
What each route does is in api/ingest.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ...jobs.store import Job, JobOptions
from ..auth import require_admin_key
from ..ingest import Activated, IngestService, IngestStart, JobList
from ..services import Services, services

__all__ = ["router"]

router = APIRouter(prefix="/ingest", dependencies=[Depends(require_admin_key)])


def _ingest(s: Annotated[Services, Depends(services)]) -> IngestService:
    return s.ingest


Ingest = Annotated[IngestService, Depends(_ingest)]


@router.post("/start", status_code=202, response_model=Job, summary="Start a build job")
async def ingest_start(body: IngestStart, ingest: Ingest) -> Job:
    runner = ingest.require()
    job: Job = await ingest.call(
        runner.start, body.corpus, JobOptions(unit=body.unit, dense_index=body.dense_index)
    )
    return job


@router.get("/status/{job_id}", response_model=Job, summary="A job's state")
async def ingest_status(job_id: str, ingest: Ingest) -> Job:
    runner = ingest.require()
    job: Job = await ingest.call(lambda: runner.store.settle(runner.store.read(job_id)))
    return job


@router.get("/list", response_model=JobList, summary="Every job, newest first")
async def ingest_list(ingest: Ingest) -> JobList:
    runner = ingest.require()
    jobs = await ingest.call(lambda: [runner.store.settle(j) for j in runner.store.jobs()])
    return JobList(jobs=jobs)


@router.post(
    "/cancel/{job_id}",
    response_model=Job,
    summary="Stop a queued or running job (it ends as failed: cancelled)",
)
async def ingest_cancel(job_id: str, ingest: Ingest) -> Job:
    runner = ingest.require()
    job: Job = await ingest.call(runner.cancel, job_id)
    return job


@router.post(
    "/activate/{job_id}",
    response_model=Activated,
    summary="Serve a succeeded job's bundle (swapped between requests, on every worker)",
)
async def ingest_activate(job_id: str, ingest: Ingest) -> JSONResponse:
    activated = await ingest.activate(job_id)
    return JSONResponse(activated.model_dump())
