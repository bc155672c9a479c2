"""Job records: atomic files, settling jobs whose build process is gone, progress across stages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import BadCorpus, JobBusy, UnknownJob
from rag.jobs.runner import JobRunner
from rag.jobs.store import STALE_SECONDS, Job, JobOptions, JobStore


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_records_round_trip_and_ids_are_never_paths(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create("/data/corpus", JobOptions(unit="passage"))
    assert store.read(job.id) == job and job.state == "queued"
    assert [j.id for j in store.jobs()] == [job.id]
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temp file, renamed
    for bad in ("../etc/passwd", "a/b", "", "x" * 80):
        with pytest.raises(UnknownJob):
            store.read(bad)
    (tmp_path / "junk.json").write_text("{not json")
    assert [j.id for j in store.jobs()] == [job.id]


def test_an_active_job_whose_process_is_gone_settles_as_failed(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    gone = store.update(store.create("/c", JobOptions()).id, state="running", pid=dead_pid())
    alive = store.update(
        store.create("/c", JobOptions()).id, state="running", pid=os.getpid(), heartbeat=time.time()
    )
    silent = store.update(
        store.create("/c", JobOptions()).id,
        state="running",
        pid=os.getpid(),
        heartbeat=time.time() - STALE_SECONDS - 1,
    )
    orphan = store.create("/c", JobOptions()).model_copy(update={"created_at": "2020-01-01T00:00:00+00:00"})
    store.write(orphan)
    settled = {j.id: j for j in (store.settle(store.read(x.id)) for x in (gone, alive, silent, orphan))}
    assert settled[alive.id].state == "running"
    for job_id in (gone.id, silent.id, orphan.id):
        assert settled[job_id].state == "failed" and "interrupted" in (settled[job_id].error or "")
        assert store.read(job_id).state == "failed"  # persisted
    assert [j.id for j in store.active()] == [alive.id]
    done = store.update(gone.id, state="succeeded", error=None)
    assert store.settle(done).state == "succeeded"  # finished jobs are left alone


def test_progress_runs_over_the_stages() -> None:
    job = Job(id="j", state="running", corpus="/c", created_at="2026-01-01T00:00:00+00:00")
    values = [
        job.at(stage, done, total)["progress"]
        for stage, done, total in [
            ("load", 0, 1),
            ("segment", 50, 100),
            ("embed", 0, 10),
            ("embed", 5, 10),
            ("embed", 10, 10),
            ("index", 4, 4),
        ]
    ]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0 and values[3] == 0.5


def test_one_job_at_a_time_and_bad_corpora_are_refused(tmp_path: Path) -> None:
    runner = JobRunner(tmp_path / "jobs", Settings(ingest_roots=(tmp_path,)))
    busy = runner.store.create("/c", JobOptions())
    runner.store.update(busy.id, state="running", pid=os.getpid(), heartbeat=time.time())
    with pytest.raises(JobBusy, match=f"job {busy.id} is running"):
        runner.start(str(tmp_path), JobOptions())
    with pytest.raises(BadCorpus, match="absolute path"):
        runner.start("relative/corpus", JobOptions())
    with pytest.raises(BadCorpus, match="not found"):
        runner.start(str(tmp_path / "missing"), JobOptions())
    with pytest.raises(BadCorpus, match="S3"):
        runner.start("s3:///no-bucket", JobOptions())
    assert len(runner.store.jobs()) == 1


def test_prune_keeps_the_newest_finished_bundles_and_the_live_one(tmp_path: Path) -> None:
    runner = JobRunner(tmp_path / "jobs")
    store = runner.store
    ids = []
    for i in range(5):
        job = Job(
            id=f"2026010{i + 1}T000000-00000{i}",
            state="succeeded",
            corpus="/c",
            created_at=f"2026-01-0{i + 1}T00:00:00+00:00",
        )
        store.write(job)
        (store.work_dir(job.id) / "bundle").mkdir(parents=True)
        ids.append(job.id)
    (store.root / "live.json").write_text(f'{{"job_id": "{ids[0]}", "bundle": "x"}}')
    assert sorted(runner.prune(keep=2)) == [ids[1], ids[2]]
    assert [i for i in ids if store.work_dir(i).exists()] == [ids[0], ids[3], ids[4]]
    assert len(store.jobs()) == 5  # the records stay


def test_a_jobs_warnings_are_capped_with_a_count_of_the_rest() -> None:
    from rag.jobs.builder import capped

    lines = [f"skipped f{i}.pdf: encrypted" for i in range(60)]
    assert capped(lines[:50]) == lines[:50]
    kept = capped(lines)
    assert (
        len(kept) == 50 and kept[:49] == lines[:49] and kept[-1] == "… 11 more (the bundle's manifest.json)"
    )
