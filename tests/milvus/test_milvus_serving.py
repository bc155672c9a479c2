"""The server with RAG_RETRIEVAL_BACKEND=milvus (the setting under test), started as `make run` starts it, and
what its users see while the engine is missing, late, published, killed mid-service and back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rag_testkit.launch import Service, make_run, user_environment
from rag_testkit.milvus import MilvusLite

QUESTION = "When was the Eiffel Tower completed?"


def ready(service: Service) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{service.url}/ready", timeout=10)
    return response.status_code, response.json()


def until_ready(service: Service, status: str, reason: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """The /ready body once its status is `status` and its reason contains `reason`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, body = ready(service)
        except httpx.TransportError as exc:  # not listening yet
            code, body = 0, {"error": repr(exc)}
        if body.get("status") == status and reason in (body.get("reason") or ""):
            assert code == (200 if status == "ready" else 503), (code, body)
            return body
        assert time.monotonic() < deadline, f"/ready stayed {code} {body}"
        time.sleep(0.3)


def ask(service: Service, question: str = QUESTION) -> httpx.Response:
    return httpx.post(f"{service.url}/answer", json={"question": question}, timeout=30)


def publish(bundle: Path, uri: str) -> dict[str, Any]:
    """`rag artifacts publish-milvus` from the environment the pods have (RAG_RETRIEVAL_BACKEND=milvus, which
    loads bundles without their indexes for serving; publishing reads them whole)."""
    rag = str(Path(sys.executable).parent / "rag")
    command = [rag, "artifacts", "publish-milvus", str(bundle), "--json"]
    env = {**user_environment(), "RAG_RETRIEVAL_BACKEND": "milvus", "RAG_MILVUS_URI": uri}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_server_follows_its_engine(tmp_path: Path, sample_bundle: Path) -> None:
    engine = MilvusLite(tmp_path / "milvus")  # not started yet: the pods come up first
    env = {"RAG_RETRIEVAL_BACKEND": "milvus", "RAG_MILVUS_URI": engine.uri, "RAG_MILVUS_TIMEOUT_SECONDS": "1"}
    service = make_run(tmp_path / "run", bundle=sample_bundle, env=env, wait_ready=False)
    try:
        # Engine down: not ready, with the reason; an answer is a 503 retrieval_unavailable, never a 500.
        until_ready(service, "unavailable", "Milvus unreachable", timeout=180)
        refused = ask(service)
        assert refused.status_code == 503 and refused.json()["error_type"] == "retrieval_unavailable"

        # Engine up, version not published: still not ready, and says what is missing.
        engine.start()
        until_ready(service, "unavailable", "no collection rag_v_")

        published = publish(sample_bundle, engine.uri)
        assert published["created"] and published["rows"] > 0
        until_ready(service, "ready")
        answered = ask(service)
        assert answered.status_code == 200 and "1889" in answered.json()["answer"], answered.text

        # Killed mid-service: 503s while it is gone (for a question no worker has cached), answers again
        # once it is back with its data.
        engine.kill()
        refused = ask(service, "What do roots absorb?")
        assert refused.status_code == 503 and refused.json()["error_type"] == "retrieval_unavailable", (
            refused.text
        )
        # Fails fast: a search and one retry, each bounded by RAG_MILVUS_TIMEOUT_SECONDS (1 s here), not the
        # request's 30 s deadline (pymilvus' own retries ran into it).
        assert refused.elapsed.total_seconds() < 10
        until_ready(service, "unavailable", "Milvus unreachable")
        engine.start()
        until_ready(service, "ready")
        assert ask(service, "What do roots absorb?").status_code == 200
        assert "Traceback" not in service.tail()
    finally:
        service.stop()
        engine.stop()
