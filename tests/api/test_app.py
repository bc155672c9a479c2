"""The app in-process (TestClient runs the real lifespan): routes, errors, limits, cache, auth."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rag_testkit.samples import answering_pipeline

from rag.api import create_app
from rag.config import Settings
from rag.pipeline import Pipeline

QUESTION = "When was the Eiffel Tower completed?"


@pytest.fixture(scope="module")
def pipeline(sample_bundle: Path, embedder, reranker, settings: Settings) -> Pipeline:
    return answering_pipeline(sample_bundle, embedder, reranker, settings)


def make_client(pipeline: Pipeline | None, settings: Settings, **changes: Any) -> TestClient:
    configured = Settings.model_validate({**settings.model_dump(), **changes})
    return TestClient(create_app(configured, pipeline), raise_server_exceptions=False)


def wait_ready(client: TestClient, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/ready")
        if response.status_code == 200 or response.json()["status"] == "failed":
            return response.json()
        time.sleep(0.02)
    raise AssertionError("never ready")


@pytest.fixture()
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with make_client(pipeline, settings) as c:
        wait_ready(c)
        yield c


def test_answer_returns_verbatim_cited_evidence_with_timings(client: TestClient, pipeline: Pipeline) -> None:
    response = client.post("/answer", json={"question": QUESTION}, headers={"x-request-id": "req-42"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-request-id"] == "req-42" == body["request_id"]
    assert not body["abstained"] and body["answer"] == " ".join(e["text"] for e in body["evidence"])
    docs = {d.id: d for d in pipeline.bundle.documents}
    for e in body["evidence"]:
        assert docs[e["doc_id"]].text[e["char_start"] : e["char_end"]] == e["text"]
    assert {"embed", "bm25", "dense", "fuse", "rerank", "mmr"} <= set(body["timings_ms"])
    assert body["cache"] == {"hit": False, "age_seconds": None}
    assert "rerank;dur=" in response.headers["server-timing"]


def test_second_identical_question_is_a_cache_hit(client: TestClient) -> None:
    first = client.post("/answer", json={"question": "What do roots absorb?"}).json()
    again = client.post("/answer", json={"question": "  what do ROOTS absorb? "}).json()
    assert again["cache"]["hit"] is True and again["cache"]["age_seconds"] >= 0
    assert again["evidence"] == first["evidence"]
    # different parameters are a different entry
    other = client.post("/answer", json={"question": "What do roots absorb?", "top_k": 1}).json()
    assert other["cache"]["hit"] is False and len(other["evidence"]) == 1
    stats = client.get("/cache/stats").json()
    assert stats["hits"] == 1 and stats["size"] == 2 and stats["corpus_id"]


def test_request_overrides_reach_the_pipeline(client: TestClient) -> None:
    body = client.post("/answer", json={"question": QUESTION, "rerank": False, "evidence_k": 1}).json()
    assert "rerank" not in body["timings_ms"] and len(body["evidence"]) == 1
    older = client.post("/answer", json={"question": QUESTION, "rerank": False, "top_k": 1}).json()
    assert older["evidence"] == body["evidence"]  # `top_k`, the field's first name, still works
    filtered = client.post("/answer", json={"question": QUESTION, "filters": {"tags": "botany"}}).json()
    assert {e["doc_id"] for e in filtered["evidence"]} == {"roots"}
    excluded = client.post(
        "/answer", json={"question": "roots", "filters": {"tags": {"not": ["biology"]}}}
    ).json()
    assert excluded["evidence"] and "roots" not in {e["doc_id"] for e in excluded["evidence"]}


def test_search_returns_ranked_units(client: TestClient) -> None:
    response = client.post("/search", json={"question": "capital of France", "limit": 3})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert 1 <= len(hits) <= 3 and "paris.md" in {h["doc_id"] for h in hits}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"question": ""}, 422, "validation_error"),
        ({"question": "   "}, 422, "validation_error"),
        ({"question": "x" * 2001}, 422, "validation_error"),
        ({"question": QUESTION, "top_k": 0}, 422, "validation_error"),
        ({"question": QUESTION, "top_k": 21}, 422, "validation_error"),
        ({"question": QUESTION, "surprise": 1}, 422, "validation_error"),
        ({"question": QUESTION, "filters": {"nope": "x"}}, 422, "query_error"),
        ({"question": QUESTION, "filters": {"tags": {"and": "x"}}}, 422, "validation_error"),
        ({"question": QUESTION, "alpha": 2}, 422, "validation_error"),
        ({"question": 5}, 422, "validation_error"),
        ([], 422, "validation_error"),
    ],
)
def test_bad_input_is_a_json_4xx(client: TestClient, body: Any, status: int, error_type: str) -> None:
    response = client.post("/answer", json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error_type"] == error_type and payload["error"] and payload["request_id"]


# Values of every JSON type and awkward edges, for any field of either query route.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 3, 10**20, 1.5, 1e308, "", " ", "x", "\x00", "é" * 5, "a" * 3000, [], [1], ["a"],
    [None], [[1]], {}, {"a": 1}, {"not": []}, {"not": [1, "a"]}, {"not": {"x": 1}}, "rrf", "convex",
    "generative", {"": ""},
]  # fmt: skip
ODD_FIELDS = ["filters", "rerank", "fusion", "alpha", "top_k", "evidence_k", "mode", "stream", "limit", "x"]


def test_random_bodies_never_get_a_5xx_and_always_get_json(client: TestClient) -> None:
    """A seeded sweep over odd values in every field (4,900 bodies found nothing when first run; this keeps
    a bounded 300): each answer is a JSON 2xx/4xx, and a 4xx names its error_type."""
    rng = random.Random(19)
    for _ in range(300):
        body: dict[str, Any] = (
            {"question": rng.choice([QUESTION, "ok", *ODD_VALUES])} if rng.random() < 0.9 else {}
        )
        for name in rng.sample(ODD_FIELDS, rng.randint(0, 4)):
            body[name] = rng.choice(ODD_VALUES)
            if name == "filters" and rng.random() < 0.6:
                body[name] = {rng.choice(["tags", "doc_id", "", "x" * 300]): rng.choice(ODD_VALUES)}
        route = rng.choice(["/answer", "/search"])
        response = client.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code < 500, (route, body, response.text)
        payload = response.json()
        assert response.status_code < 400 or payload["error_type"], (route, body, payload)


def test_malformed_json_and_oversized_body(client: TestClient) -> None:
    response = client.post("/answer", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error_type"] == "validation_error"
    big = client.post("/answer", content=b'{"question": "' + b"a" * 70_000 + b'"}')
    assert big.status_code == 413 and big.json()["error_type"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: counted while read
        yield b'{"question": "'
        for _ in range(80):
            yield b"a" * 1000
        yield b'"}'

    chunked = client.post("/answer", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert client.get("/nope").json()["error_type"] == "not_found"
    response = client.get("/answer")
    assert response.status_code == 405 and response.json()["error_type"] == "method_not_allowed"


def test_health_ready_info_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    info = client.get("/info").json()
    assert info["bundle"]["corpus_id"] == ready.json()["corpus_id"]
    assert info["models"]["embedder"]["fingerprint"] == info["bundle"]["embedding_model"]["fingerprint"]
    client.post("/answer", json={"question": "How tall is the Eiffel Tower?"})
    text = client.get("/metrics").text
    for name in ("rag_stage_seconds_bucket", "rag_answers_total", "rag_index_info", "rag_model_load_seconds"):
        assert name in text
    assert 'rag_stage_seconds_count{stage="rerank"}' in text
    assert "http_request_duration_seconds" in text or "http_requests_total" in text


def test_openapi_documents_examples_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/answer"]["post"]
    assert {"200", "422", "429", "503"} <= set(answer["responses"])
    assert schema["components"]["schemas"]["AnswerRequest"]["examples"]


def test_api_key_guards_queries_but_not_probes(pipeline: Pipeline, settings: Settings) -> None:
    with make_client(pipeline, settings, api_key="s3cret") as c:
        wait_ready(c)
        assert c.post("/answer", json={"question": QUESTION}).status_code == 401
        assert (
            c.post("/answer", json={"question": QUESTION}, headers={"x-api-key": "wrong"}).status_code == 401
        )
        ok = c.post("/answer", json={"question": QUESTION}, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        assert c.get("/metrics").status_code == 200
        assert "s3cret" not in c.get("/info", headers={"x-api-key": "s3cret"}).text


def test_cache_purge_is_admin_only(client: TestClient, pipeline: Pipeline, settings: Settings) -> None:
    assert client.post("/cache/purge").status_code == 403
    with make_client(pipeline, settings, admin_key="adm") as c:
        wait_ready(c)
        c.post("/answer", json={"question": QUESTION})
        assert c.post("/cache/purge", headers={"x-admin-key": "no"}).status_code == 401
        assert c.post("/cache/purge", headers={"x-admin-key": "adm"}).json() == {"purged": 1}
        assert c.get("/cache/stats").json()["size"] == 0


class _SlowPipeline:
    """Wraps a pipeline so each answer blocks until released: faults we cannot cause on demand."""

    def __init__(self, inner: Pipeline, seconds: float = 5.0) -> None:
        self._inner = inner
        self.release = threading.Event()
        self.seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def answer(self, *args: Any, **kwargs: Any) -> Any:
        self.release.wait(self.seconds)
        return self._inner.answer(*args, **kwargs)


def test_full_worker_answers_429_with_retry_after_and_ready_says_saturated(
    pipeline: Pipeline, settings: Settings
) -> None:
    slow = _SlowPipeline(pipeline)
    with make_client(slow, settings, max_concurrency=1, warmup=False, cache_size=0) as c:  # type: ignore[arg-type]
        wait_ready(c)
        first: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: first.update(r=c.post("/answer", json={"question": QUESTION}))
        )
        worker.start()
        deadline = time.monotonic() + 5
        while c.get("/ready").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "saturated"
        rejected = c.post("/answer", json={"question": QUESTION})
        assert rejected.status_code == 429 and rejected.headers["retry-after"] == "1"
        assert rejected.json()["error_type"] == "overloaded"
        slow.release.set()
        worker.join(10)
        assert first["r"].status_code == 200
        assert c.get("/ready").status_code == 200


def test_deadline_gives_504_json_not_a_hung_socket(pipeline: Pipeline, settings: Settings) -> None:
    slow = _SlowPipeline(pipeline, seconds=2.0)
    with make_client(slow, settings, request_timeout_seconds=0.2, warmup=False) as c:  # type: ignore[arg-type]
        wait_ready(c)
        started = time.monotonic()
        response = c.post("/answer", json={"question": QUESTION})
        assert response.status_code == 504 and response.json()["error_type"] == "deadline_exceeded"
        assert time.monotonic() - started < 1.5
        slow.release.set()


def test_missing_bundle_keeps_serving_health_and_reports_why(tmp_path: Path, settings: Settings) -> None:
    with make_client(None, settings, bundle_dir=str(tmp_path / "absent")) as c:
        body = wait_ready(c)
        assert body["status"] == "failed" and "absent" in body["reason"]
        assert c.get("/ready").status_code == 503
        assert c.get("/health").status_code == 200
        response = c.post("/answer", json={"question": QUESTION})
        assert response.status_code == 503 and response.json()["error_type"] == "not_ready"


def test_loads_bundle_from_settings(sample_bundle: Path, settings: Settings) -> None:
    with make_client(None, settings, bundle_dir=str(sample_bundle)) as c:
        assert wait_ready(c)["status"] == "ready"
        assert c.post("/answer", json={"question": QUESTION}).status_code == 200


def test_unexpected_error_is_a_generic_500_without_trace(pipeline: Pipeline, settings: Settings) -> None:
    class Broken(_SlowPipeline):
        def answer(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internals /etc/passwd")

    with make_client(Broken(pipeline), settings, warmup=False) as c:  # type: ignore[arg-type]
        wait_ready(c)
        response = c.post("/answer", json={"question": QUESTION})
        assert response.status_code == 500
        assert response.json()["error_type"] == "internal" and "secret" not in response.text


def test_a_cited_span_comes_back_in_its_context(client: TestClient, pipeline: Pipeline) -> None:
    evidence = client.post("/answer", json={"question": QUESTION}).json()["evidence"][0]
    response = client.get(
        f"/documents/{evidence['doc_id']}/span",
        params={"start": evidence["char_start"], "end": evidence["char_end"], "context": 20},
    )
    assert response.status_code == 200, response.text
    span = response.json()
    text = pipeline.bundle.document(evidence["doc_id"]).text
    assert (
        span["text"] == evidence["text"]
        and span["before"] + span["text"] + span["after"]
        == (text[span["context_start"] : span["context_end"]])
    )
    assert span["context_start"] <= evidence["char_start"] - min(20, evidence["char_start"])
    assert span["document_chars"] == len(text) and span["title"] == evidence["title"]


@pytest.mark.parametrize(
    "path, params, status, error_type",
    [
        ("/documents/no-such-doc/span", {"start": 0, "end": 5}, 404, "document_not_found"),
        ("/documents/paris.md/span", {"start": 5, "end": 5}, 422, "query_error"),
        ("/documents/paris.md/span", {"start": 0, "end": 10**9}, 422, "query_error"),
        ("/documents/paris.md/span", {"start": -1, "end": 5}, 422, "validation_error"),
        ("/documents/paris.md/span", {"start": 0}, 422, "validation_error"),
    ],
)
def test_bad_citation_requests_are_json_4xx(
    client: TestClient, path: str, params: dict[str, int], status: int, error_type: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status and response.json()["error_type"] == error_type, response.text


def test_the_page_is_served_at_the_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'id="question"' in response.text and "<script src" not in response.text  # no external assets
