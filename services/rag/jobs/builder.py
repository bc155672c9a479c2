"""The build process of one ingestion job: `python -m rag.jobs.builder JOBS_DIR JOB_ID`.

A process of its own, not a thread of the server: embedding is CPU-bound and holds the GIL in places, so a
thread would stall request handling; a process at a lower priority (nice 10) does not. It reads its settings
from the same RAG_* environment as the server, reports progress into the job record, and beats a heartbeat.
It ends its job as failed when told to stop (SIGTERM: the server is shutting down) or when its parent (the
server worker) goes away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings, load_settings
from ..errors import RagError
from ..redact import redact
from .interrupts import Interrupts
from .runner import CANCELLED, check_corpus
from .store import MAX_JOB_WARNINGS, Job, JobStore, utc_now

__all__ = ["main"]

if TYPE_CHECKING:  # imported when the build starts: the signal handlers are set first (main)
    from ..index.builder import BuildResult
    from ..index.progress import BuildProgress

log = logging.getLogger("rag.jobs")

HEARTBEAT_SECONDS = 2.0
_REPORT_SECONDS = 0.5  # progress writes at most this often (the final one of a stage always)


# BaseException, as KeyboardInterrupt is: the signal handlers raise these wherever the build happens to be
# (but inside a write of the job's record: interrupts.py), and an `except Exception` there (a loader wrapping
# a library's bare Exception) must not turn a cancel into a model error. That happened: a cancel during the
# tokenizer's load was reported as "cannot be read".
class Interrupted(BaseException):
    """SIGTERM: the server is shutting down."""


class Cancelled(BaseException):
    """SIGUSR1: `POST /ingest/cancel/{id}` (runner.JobRunner.cancel)."""


def _fetch_corpus(corpus: str, settings: Settings, dest: Path) -> Path:
    """The corpus as a local folder: the path checked again here (links may have changed since the job was
    started), or the S3 prefix downloaded into `dest`."""
    resolved = check_corpus(corpus, settings.ingest_roots)
    if resolved is not None:
        return resolved
    from ..artifacts import S3Location, S3Store, download_prefix

    store = S3Store(
        S3Location.parse(corpus),
        endpoint_url=settings.s3_endpoint_url,
        deadline_seconds=settings.artifacts_timeout_seconds,
    )
    download_prefix(store, dest)
    return dest


class _Record:
    """The job's record, written from this thread and the heartbeat's (one lock), ended exactly once. Its
    writes take locks, so the main thread's are shielded from the stop signals."""

    def __init__(self, store: JobStore, job: Job, interrupts: Interrupts) -> None:
        self.store = store
        self.job = job
        self.interrupts = interrupts
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._last_report = 0.0

    def update(self, **changes: Any) -> None:
        with self.interrupts.shielded(), self._lock:
            self.store.update(self.job.id, **changes)

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_report >= _REPORT_SECONDS:
            self._last_report = now
            self.update(**self.job.at(stage, done, total))

    def beat(self, parent: int) -> None:
        while not self.finished.wait(HEARTBEAT_SECONDS):
            if os.getppid() != parent:  # the server worker is gone: nobody will serve what we build
                self.fail(
                    "interrupted: the server process that started the job went away; "
                    "jobs are not resumed: start it again"
                )
                os._exit(3)
            self.update(heartbeat=time.time())

    def fail(self, error: str) -> None:
        self.interrupts.close()
        self.finished.set()
        self.update(state="failed", finished_at=utc_now(), error=error)

    def succeed(self, result: BuildResult, warnings: list[str]) -> None:
        self.interrupts.close()
        self.finished.set()
        self.update(
            state="succeeded",
            warnings=capped([redact(w) for w in warnings]),
            finished_at=utc_now(),
            progress=1.0,
            stage=None,
            bundle=str(result.path.resolve()),
            corpus_id=result.manifest.corpus_id,
            counts={
                **result.manifest.counts,
                "embedded": result.embedded,
                "cache_hits": result.cache_hits,
                "seconds": round(result.seconds),
            },
        )


def capped(warnings: list[str], most: int = MAX_JOB_WARNINGS) -> list[str]:
    """At most `most` lines, the last of them saying how many more there were."""
    if len(warnings) <= most:
        return warnings
    return [*warnings[: most - 1], f"… {len(warnings) - most + 1} more (the bundle's manifest.json)"]


def _build(store: JobStore, job: Job, progress: BuildProgress) -> tuple[BuildResult, list[str]]:
    """The job's bundle, built with the server's settings and the job's options; and the load's warnings."""
    from ..index import Builder

    overrides = {k: v for k, v in job.options.model_dump().items() if v is not None}
    settings = load_settings(**overrides)
    work = store.work_dir(job.id)
    corpus = _fetch_corpus(job.corpus, settings, work / "corpus")
    builder = Builder.from_settings(settings)
    documents, report = builder.load(corpus, confined=True)
    result = builder.build(documents, work / "bundle", report=report, overwrite=True, progress=progress)
    return result, report.summary()


def run(store: JobStore, job_id: str, interrupts: Interrupts) -> None:
    record = _Record(store, store.read(job_id), interrupts)
    try:  # a cancel taken while the first write is shielded is raised as it ends: here
        record.update(state="running", started_at=utc_now(), pid=os.getpid(), **record.job.at("load", 0, 1))
        beat = threading.Thread(
            target=record.beat, args=(os.getppid(),), name="rag-job-heartbeat", daemon=True
        )
        beat.start()
        result, warnings = _build(store, record.job, record.progress)
    except Cancelled:
        record.fail(CANCELLED)
    except Interrupted:
        record.fail(
            "interrupted: the server shut down while the job ran; jobs are not resumed: start it again"
        )
    except RagError as exc:
        record.fail(redact(f"{exc.error_type}: {exc}"))
    except Exception as exc:  # the record must say why, whatever broke
        traceback.print_exc()
        record.fail(redact(f"internal: {type(exc).__name__}: {exc}"))
    else:
        record.succeed(result, warnings)


def main(argv: list[str] | None = None) -> int:
    jobs_dir, job_id = (argv if argv is not None else sys.argv[1:])[:2]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    interrupts = Interrupts()
    interrupts.on(signal.SIGTERM, Interrupted)
    interrupts.on(signal.SIGUSR1, Cancelled)
    with contextlib.suppress(OSError):
        os.nice(10)  # serving first: the build takes what the requests leave
    run(JobStore(Path(jobs_dir)), job_id, interrupts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
