"""The /ingest routes in-process, with a real build process: guard, validation, a job to the end, activation."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rag_testkit.samples import big_corpus, write_corpus

from rag.api import create_app
from rag.config import Settings
from rag.index import Bundle
from rag.pipeline import Pipeline

ADMIN = {"x-admin-key": "adm"}
OTHER_CORPUS = {
    "volcanoes.md": "# Volcanoes\n\nA volcano is a rupture in the crust of a planet. Lava is molten rock.\n",
    "rivers.md": "# Rivers\n\nA river flows towards an ocean or a lake. The Nile is a long river.\n",
}


@pytest.fixture()
def pipeline(sample_bundle: Path, embedder: Any, settings: Settings) -> Pipeline:
    return Pipeline(Bundle.load(sample_bundle), embedder, None, settings.retrieval_params())


def ingest_client(pipeline: Pipeline, settings: Settings, jobs: Path, **changes: Any) -> TestClient:
    """A service with ingestion on (admin key "adm", job records in `jobs`) and these settings changed."""
    return client_for(
        pipeline, settings, admin_key="adm", ingest_enabled=True, ingest_dir=str(jobs), **changes
    )


def client_for(pipeline: Pipeline, settings: Settings, **changes: Any) -> TestClient:
    configured = Settings.model_validate({**settings.model_dump(), "reranker_model": None, **changes})
    return TestClient(create_app(configured, pipeline), raise_server_exceptions=False)


@pytest.fixture()
def client(pipeline: Pipeline, settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    with ingest_client(
        pipeline,
        settings,
        tmp_path / "jobs",
        ingest_roots=(str(tmp_path),),
        ingest_poll_seconds=0.1,
        embedding_cache=str(tmp_path / "emb.sqlite"),
        threads=1,
    ) as c:
        deadline = time.monotonic() + 60
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield c


def wait_done(client: TestClient, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        job = client.get(f"/ingest/status/{job_id}", headers=ADMIN).json()
        seen.append(job["progress"])
        if job["state"] in ("succeeded", "failed"):
            assert seen == sorted(seen), "progress went backwards"
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never finished")


def test_ingest_is_off_by_default_and_admin_only(
    pipeline: Pipeline, settings: Settings, tmp_path: Path
) -> None:
    with client_for(pipeline, settings, admin_key="adm") as off:
        response = off.get("/ingest/list", headers=ADMIN)
        assert response.status_code == 403 and "RAG_INGEST_ENABLED" in response.json()["error"]
    with client_for(pipeline, settings, ingest_enabled=True, ingest_dir=str(tmp_path / "j")) as no_admin:
        assert no_admin.get("/ingest/list").status_code == 403  # admin endpoints are off without a key
    with client_for(
        pipeline, settings, admin_key="adm", ingest_enabled=True, ingest_dir=str(tmp_path / "j")
    ) as c:
        assert c.get("/ingest/list").status_code == 401
        assert c.get("/ingest/list", headers={"x-admin-key": "wrong"}).status_code == 401


def test_bad_requests_get_clear_4xx(client: TestClient, tmp_path: Path) -> None:
    cases = [
        ({"corpus": "relative/path"}, 422, "absolute path"),
        ({"corpus": str(tmp_path / "missing")}, 422, "not found"),
        ({"corpus": ""}, 422, None),
        ({"corpus": str(tmp_path), "unit": "chapter"}, 422, None),
        ({"corpus": str(tmp_path), "surprise": 1}, 422, None),
    ]
    for body, status, message in cases:
        response = client.post("/ingest/start", json=body, headers=ADMIN)
        assert response.status_code == status, (body, response.text)
        assert "error" in response.json() and (message is None or message in response.json()["error"])
    missing = client.post("/ingest/start", json={"corpus": str(tmp_path / "missing")}, headers=ADMIN)
    assert missing.json()["error_type"] == "bad_corpus"
    unknown = client.get("/ingest/status/nope", headers=ADMIN)
    assert (unknown.status_code, unknown.json()["error_type"]) == (404, "job_not_found")
    assert client.get("/ingest/status/..%2F..%2Fetc", headers=ADMIN).status_code == 404
    assert client.post("/ingest/activate/nope", headers=ADMIN).status_code == 404
    assert client.get("/ingest/list", headers=ADMIN).json() == {"jobs": []}


def test_a_job_builds_reports_progress_and_can_be_made_live(client: TestClient, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "other", OTHER_CORPUS | {"empty.md": "", "figure.png": b"\x89PNG"})
    before = client.get("/ready").json()["corpus_id"]
    response = client.post("/ingest/start", json={"corpus": str(corpus), "unit": "passage"}, headers=ADMIN)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in ("queued", "running") and job["pid"]
    done = wait_done(client, job["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"] == 1.0 and done["counts"]["documents"] == 2 and done["counts"]["embedded"] > 0
    assert done["options"]["unit"] == "passage" and Path(done["bundle"]).is_dir()
    assert done["warnings"][0].startswith("passed over 1 file(s) of types not read: .png ×1")
    assert done["warnings"][1:] == ["skipped empty.md: empty file"]  # what rag build would print
    assert [j["id"] for j in client.get("/ingest/list", headers=ADMIN).json()["jobs"]] == [job["id"]]

    activated = client.post(f"/ingest/activate/{job['id']}", headers=ADMIN)
    assert activated.status_code == 200, activated.text
    assert activated.json() == {"job_id": job["id"], "version": f"ingest-{job['id']}", "changed": True}
    ready = client.get("/ready").json()
    assert ready["corpus_id"] == done["corpus_id"] != before
    answer = client.post("/answer", json={"question": "What is lava?", "rerank": False}).json()
    assert {e["doc_id"] for e in answer["evidence"]} <= {"volcanoes.md", "rivers.md"}

    # the same corpus again: everything comes from the embedding cache
    again = client.post(
        "/ingest/start", json={"corpus": str(corpus), "unit": "passage"}, headers=ADMIN
    ).json()
    second = wait_done(client, again["id"])
    assert second["state"] == "succeeded" and second["counts"]["embedded"] == 0
    assert second["counts"]["cache_hits"] == done["counts"]["embedded"]


def test_a_failing_job_reports_why(client: TestClient, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.bin").write_bytes(b"\x00\x01")
    job = client.post("/ingest/start", json={"corpus": str(empty)}, headers=ADMIN).json()
    done = wait_done(client, job["id"])
    assert done["state"] == "failed" and "no documents" in done["error"]
    refused = client.post(f"/ingest/activate/{job['id']}", headers=ADMIN)
    assert refused.status_code == 409 and "only a succeeded job" in refused.json()["error"]


def test_ingestion_reads_only_inside_its_roots(
    client: TestClient, pipeline: Pipeline, settings: Settings, tmp_path: Path
) -> None:
    """The fixture's server may read under tmp_path (RAG_INGEST_ROOTS) and nowhere else: not system files,
    not a link leading out, not a file of another type; a link inside a corpus folder is skipped."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("The root password is hunter2.\n")
    (tmp_path / "link-out").symlink_to(outside)
    (tmp_path / "data.bin").write_bytes(b"\x00\x01\x02")
    refused = {
        "/etc/shadow": "outside the folders ingestion may read",
        "/etc": "outside the folders ingestion may read",
        "/": "outside the folders ingestion may read",
        str(secret): "outside the folders ingestion may read",
        str(tmp_path / "link-out"): "outside the folders ingestion may read",
        str(tmp_path / "link-out" / "secret.txt"): "outside the folders ingestion may read",
        str(tmp_path / "data.bin"): "not a supported file type",
    }
    for corpus, message in refused.items():
        response = client.post("/ingest/start", json={"corpus": corpus}, headers=ADMIN)
        assert response.status_code == 422, (corpus, response.text)
        assert response.json()["error_type"] == "bad_corpus" and message in response.json()["error"], corpus

    corpus = write_corpus(tmp_path / "docs", OTHER_CORPUS)
    (corpus / "leak.txt").symlink_to(secret)
    job = client.post("/ingest/start", json={"corpus": str(corpus)}, headers=ADMIN).json()
    done = wait_done(client, job["id"])
    assert done["state"] == "succeeded" and done["counts"]["documents"] == 2, done
    manifest = json.loads((Path(done["bundle"]) / "manifest.json").read_text())
    assert {"source": "leak.txt", "reason": "a link to a file outside the corpus"} in manifest["skipped"]
    assert client.post(f"/ingest/activate/{job['id']}", headers=ADMIN).status_code == 200
    found = client.post("/search", json={"question": "root password hunter2", "rerank": False}).json()
    assert found["hits"] and {hit["doc_id"] for hit in found["hits"]} <= {"volcanoes.md", "rivers.md"}
    assert "hunter2" not in json.dumps(found["hits"])

    with ingest_client(pipeline, settings, tmp_path / "j2") as no_roots:
        off = no_roots.post("/ingest/start", json={"corpus": str(corpus)}, headers=ADMIN)
        assert off.status_code == 422 and "RAG_INGEST_ROOTS" in off.json()["error"]


def test_the_live_record_is_not_a_job(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "jobs" / "live.json").write_text(json.dumps({"job_id": "20260101T000000-abcdef"}))
    for response in (
        client.get("/ingest/status/live", headers=ADMIN),
        client.post("/ingest/activate/live", headers=ADMIN),
        client.get("/ingest/status/live.json", headers=ADMIN),
    ):
        assert (response.status_code, response.json()["error_type"]) == (404, "job_not_found")


def test_an_s3_corpus_that_cannot_be_read_fails_at_once_saying_why(
    pipeline: Pipeline, settings: Settings, tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No credentials anywhere (and no instance metadata to ask): the job fails in seconds, not after the
    300 s artifact deadline, and an invalid bucket name is refused before a job exists."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with ingest_client(pipeline, settings, tmp_path / "jobs", s3_endpoint_url=s3_server) as c:
        invalid = c.post("/ingest/start", json={"corpus": "s3://Not_A_Bucket/docs"}, headers=ADMIN)
        assert invalid.status_code == 422 and "not a valid S3 bucket name" in invalid.json()["error"]
        started = time.monotonic()
        job = c.post("/ingest/start", json={"corpus": "s3://rag-corpus/docs"}, headers=ADMIN).json()
        done = wait_done(c, job["id"], timeout=60)
        assert time.monotonic() - started < 30
        assert done["state"] == "failed" and "Unable to locate credentials" in done["error"], done


def test_a_running_job_can_be_cancelled(client: TestClient, tmp_path: Path) -> None:
    job = client.post(
        "/ingest/start", json={"corpus": str(big_corpus(tmp_path / "big"))}, headers=ADMIN
    ).json()
    deadline = time.monotonic() + 60
    while client.get(f"/ingest/status/{job['id']}", headers=ADMIN).json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cancelled = client.post(f"/ingest/cancel/{job['id']}", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "failed" and cancelled.json()["error"].startswith("cancelled")
    again = client.post(f"/ingest/cancel/{job['id']}", headers=ADMIN)
    assert (again.status_code, again.json()["error_type"]) == (409, "job_conflict")
    assert client.post("/ingest/cancel/20260101T000000-abcdef", headers=ADMIN).status_code == 404
    small = write_corpus(tmp_path / "small", OTHER_CORPUS)  # the node is free again
    assert client.post("/ingest/start", json={"corpus": str(small)}, headers=ADMIN).status_code == 202


def test_a_job_reads_pdf_and_docx_and_the_answer_cites_the_page(client: TestClient, tmp_path: Path) -> None:
    from rag_testkit.documents import page_of, render_docx, render_pdf

    corpus = tmp_path / "office"
    corpus.mkdir()
    filler = ["Herons wade through the shallow reeds at dawn. They stand still for a long time."] * 60
    placed = render_pdf(
        corpus / "lava.pdf", "Lava", [*filler, "Lava is molten rock that erupts from a volcano."]
    )
    page = page_of(placed, len(filler), "Lava", 0)
    render_docx(corpus / "rivers.docx", "Rivers", ["The Nile is a long river that flows north."])
    job = client.post("/ingest/start", json={"corpus": str(corpus)}, headers=ADMIN).json()
    done = wait_done(client, job["id"])
    assert done["state"] == "succeeded" and done["counts"]["documents"] == 2, done
    assert client.post(f"/ingest/activate/{job['id']}", headers=ADMIN).status_code == 200
    answer = client.post("/answer", json={"question": "What is lava?", "rerank": False}).json()
    top = answer["evidence"][0]
    assert top["doc_id"] == "lava.pdf" and top["text"] == "Lava is molten rock that erupts from a volcano."
    assert top["page"] == page > 1 and top["section"] == "Lava"
