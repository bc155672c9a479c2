"""Ingestion jobs across a restart of the real server (gunicorn, 2 workers), as documented in api/ingest.py:
a running job is interrupted and ends as failed with the reason; an activated bundle is served again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from rag_testkit.launch import Service, make_run
from rag_testkit.samples import big_corpus, write_corpus

from rag.cli import main

ADMIN = {"x-admin-key": "adm"}


def poll(server: Service, job_id: str, until: tuple[str, ...], timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/ingest/status/{job_id}", headers=ADMIN, timeout=10).json()
        if job["state"] in until:
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}")


def served_by_every_worker(server: Service, corpus_id: str, timeout: float = 60.0) -> None:
    """Each request may reach either worker: 20 answers in a row with the corpus means both serve it."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 20:
        assert time.monotonic() < deadline, "not every worker serves the activated bundle"
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        streak = streak + 1 if ready.status_code == 200 and ready.json()["corpus_id"] == corpus_id else 0
        time.sleep(0.02 if streak else 0.1)


def test_restart_interrupts_a_running_job_and_keeps_the_activated_bundle(
    tmp_path: Path, sample_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "RAG_ADMIN_KEY": "adm",
        "RAG_INGEST_ENABLED": "true",
        "RAG_INGEST_DIR": str(tmp_path / "jobs"),
        "RAG_INGEST_ROOTS": str(tmp_path),
        "RAG_INGEST_POLL_SECONDS": "0.2",
        "RAG_EMBEDDING_CACHE": str(tmp_path / "emb.sqlite"),
    }
    server = make_run(tmp_path / "g0", bundle=sample_bundle, env=env)
    try:
        started = httpx.post(
            f"{server.url}/ingest/start", json={"corpus": str(big_corpus(tmp_path / "big"))}, headers=ADMIN
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        running = poll(server, job_id, ("running", "succeeded", "failed"))
        assert running["state"] == "running", running
        busy = httpx.post(f"{server.url}/ingest/start", json={"corpus": str(tmp_path)}, headers=ADMIN)
        assert busy.status_code == 409 and job_id in busy.json()["error"]
        assert busy.json()["error_type"] == "job_conflict"  # the README's contract
    finally:
        server.stop()

    server = make_run(tmp_path / "g1", bundle=sample_bundle, env=env)
    try:
        job = httpx.get(f"{server.url}/ingest/status/{job_id}", headers=ADMIN).json()
        assert job["state"] == "failed" and job["error"].startswith("interrupted"), job
        assert job["finished_at"] and job["progress"] < 1.0

        small = write_corpus(
            tmp_path / "small",
            {"lava.md": "# Lava\n\nLava is molten rock. It cools to basalt.\n", "empty.md": ""},
        )
        # `rag ingest` starts it, tails it with a progress bar, and makes it live
        code = main(["ingest", "--server", server.url, str(small), "--admin-key", "adm", "--activate"])
        out, err = capsys.readouterr()
        assert code == 0, err
        listed = httpx.get(f"{server.url}/ingest/list", headers=ADMIN).json()["jobs"]
        assert [j["state"] for j in listed] == ["succeeded", "failed"] and listed[1]["id"] == job_id
        done = listed[0]
        assert f"job {done['id']} succeeded: 1 documents" in out and f"serving ingest-{done['id']}" in out
        assert "100%" in err and f"job {done['id']} started" in err  # the bar (stages pass too fast here)
        assert "warning: skipped empty.md: empty file" in err  # what the job's load skipped
        served_by_every_worker(server, done["corpus_id"])
        code = main(["ingest", "--server", server.url, "relative", "--admin-key", "adm"])
        assert code == 2 and "422" in capsys.readouterr().err
    finally:
        server.stop()

    server = make_run(
        tmp_path / "g2", bundle=sample_bundle, env=env
    )  # the activated bundle is served again after a restart
    try:
        served_by_every_worker(server, done["corpus_id"])
    finally:
        server.stop()
