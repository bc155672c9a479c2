"""/answer with generation, against the scripted OpenAI-compatible server process: grounded answers, every
fallback reason, the circuit breaker, streaming, self-query, expansion, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from rag_testkit.samples import answering_pipeline
from scripted_llm import API_KEY, EXTRACTIVE_KEYS, ScriptedLlm

from rag.api import create_app
from rag.config import Settings
from rag.pipeline import Pipeline

QUESTION = "When was the Eiffel Tower completed?"


@pytest.fixture(scope="module")
def pipeline(sample_bundle: Path, embedder, reranker, settings: Settings) -> Pipeline:
    return answering_pipeline(sample_bundle, embedder, reranker, settings)


def make_client(
    pipeline: Pipeline, settings: Settings, llm: ScriptedLlm | None, **changes: Any
) -> TestClient:
    generation: dict[str, Any] = (
        {
            "generation_base_url": llm.base_url,
            "generation_model": "scripted-model",
            "generation_api_key": API_KEY,
            "generation_timeout_seconds": 1.0,
            "generation_retries": 1,
            "generation_backoff_seconds": 0.01,
        }
        if llm is not None
        else {}
    )
    configured = Settings.model_validate(
        {**settings.model_dump(), "warmup": False, "cache_size": 0, **generation, **changes}
    )
    return TestClient(create_app(configured, pipeline), raise_server_exceptions=False)


@pytest.fixture()
def client(pipeline: Pipeline, settings: Settings, llm: ScriptedLlm) -> Iterator[TestClient]:
    with make_client(pipeline, settings, llm) as c:
        yield c


def metric(client: TestClient, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent): tests compare before and after, since the
    in-process registry keeps counting across tests."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def extractive(pipeline: Pipeline, question: str = QUESTION) -> dict[str, Any]:
    return pipeline.answer(question).model_dump()


def cite(pipeline: Pipeline, needle: str, question: str = QUESTION) -> int:
    """The evidence number [n] the prompt gives the sentence containing `needle`."""
    evidence = extractive(pipeline, question)["evidence"]
    numbers = [n for n, e in enumerate(evidence, 1) if needle in e["text"]]
    assert numbers, f"no evidence with {needle!r} for {question!r}: {evidence}"
    return numbers[0]


def generative(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/answer", json={"question": QUESTION, "mode": "generative", **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_grounded_answer_passes_with_citations(
    client: TestClient, llm: ScriptedLlm, pipeline: Pipeline
) -> None:
    n = cite(pipeline, "1889")
    text = f"The Eiffel Tower was completed in 1889 [{n}]."
    llm.script(queue=[{"content": text}])
    body = generative(client)
    gen = body["generation"]
    assert gen["answer"] == text and gen["fallback_reason"] is None and gen["mode"] == "generative"
    evidence = body["evidence"][n - 1]
    assert gen["citations"] == [
        {"n": n, "sentence_id": evidence["sentence_id"], "doc_id": evidence["doc_id"]}
    ]
    assert gen["model"] == "scripted-model" and gen["usage"]["completion_tokens"] == len(text.split())
    assert gen["latency_ms"] > 0 and "generate" in body["timings_ms"]
    # the extractive answer is still there, unchanged
    reference = extractive(pipeline)
    assert body["answer"] == reference["answer"] and body["evidence"] == reference["evidence"]
    # what the server got: the numbered evidence and the question, under the configured model and key
    (call,) = llm.calls()
    prompt = call["body"]["messages"][-1]["content"]
    assert f"[{n}] " in prompt and "completed in 1889." in prompt and QUESTION in prompt
    assert call["body"]["model"] == "scripted-model" and call["auth"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("script", "reason", "calls"),
    [
        (
            {"content": "The Eiffel Tower was completed in 1889 [{n}]. Everybody loves it."},
            "uncited_sentence",
            1,
        ),
        ({"content": "The Eiffel Tower was completed in 1887 [{n}]."}, "unsupported_number", 1),
        ({"content": "The Eiffel Tower was completed in 1889 [9]."}, "unknown_citation", 1),
        ({"content": "[{n}]"}, "empty_answer", 1),
        ({"delay": 3.0, "content": "The Eiffel Tower was completed in 1889 [{n}]."}, "timeout", 1),
        ({"status": 500}, "server_error", 2),  # retried once (generation_retries=1)
        ({"drop": True}, "connection_error", 2),
    ],
)
def test_failures_fall_back_to_the_extractive_answer_with_the_reason(
    client: TestClient, llm: ScriptedLlm, pipeline: Pipeline, script: dict[str, Any], reason: str, calls: int
) -> None:
    n = cite(pipeline, "1889")
    behaviour = {k: v.replace("{n}", str(n)) if isinstance(v, str) else v for k, v in script.items()}
    llm.script(default=behaviour)
    fallbacks = metric(client, "rag_generation_fallbacks_total", reason=reason, stage="generate")
    started = time.monotonic()
    body = generative(client)
    assert time.monotonic() - started < 2.5  # a timeout (1 s) never waits for the slow server (3 s)
    gen = body["generation"]
    assert gen["fallback_reason"] == reason and gen["answer"] is None and gen["fallback_detail"]
    reference = extractive(pipeline)
    assert body["answer"] == reference["answer"] and not body["abstained"]
    assert len(llm.calls()) == calls
    assert metric(client, "rag_generation_fallbacks_total", reason=reason, stage="generate") == fallbacks + 1


def test_circuit_breaker_opens_after_n_failures_and_closes_after_the_cool_down(
    pipeline: Pipeline, settings: Settings, llm: ScriptedLlm
) -> None:
    n = cite(pipeline, "1889")
    changes = {
        "generation_retries": 0,
        "generation_breaker_failures": 2,
        "generation_breaker_reset_seconds": 1.0,
    }
    with make_client(pipeline, settings, llm, **changes) as c:
        llm.script(default={"status": 500})
        assert [generative(c)["generation"]["fallback_reason"] for _ in range(2)] == ["server_error"] * 2
        opened = time.monotonic()
        assert generative(c)["generation"]["fallback_reason"] == "circuit_open"
        assert len(llm.calls()) == 2  # open: no call was made
        # the first call after the cool-down is the probe; it succeeds, so the circuit closes
        llm.script(default={"content": f"It was completed in 1889 [{n}]."})
        time.sleep(max(0.0, 1.05 - (time.monotonic() - opened)))
        assert generative(c)["generation"]["fallback_reason"] is None
        assert generative(c)["generation"]["fallback_reason"] is None
        assert len(llm.calls()) == 2
        # a failed probe opens it again at once
        llm.script(default={"status": 500})
        for _ in range(2):
            generative(c)
        time.sleep(1.05)
        assert generative(c)["generation"]["fallback_reason"] == "server_error"  # the probe
        assert generative(c)["generation"]["fallback_reason"] == "circuit_open"
        assert len(llm.calls()) == 3


def test_abstention_is_not_sent_to_the_llm(pipeline: Pipeline, settings: Settings, llm: ScriptedLlm) -> None:
    with make_client(pipeline, settings, llm) as c:
        llm.script(default={"content": "anything [1]."})
        # no unit passes this filter: no evidence, so nothing to ground a generated answer on
        body = generative(c, filters={"tags": "astronomy"})
        assert body["abstained"] and body["generation"]["fallback_reason"] == "abstained"
        assert llm.calls() == []


def test_generative_without_a_server_is_a_clear_4xx(pipeline: Pipeline, settings: Settings) -> None:
    with make_client(pipeline, settings, None) as c:
        response = c.post("/answer", json={"question": QUESTION, "mode": "generative"})
        assert response.status_code == 422
        assert response.json()["error_type"] == "generation_not_configured"
        assert "RAG_GENERATION_BASE_URL" in response.json()["error"]
        streamed = c.post("/answer", json={"question": QUESTION, "stream": True})
        assert streamed.status_code == 422 and streamed.json()["error_type"] == "query_error"
        bad = c.post("/answer", json={"question": QUESTION, "mode": "poetic"})
        assert bad.status_code == 422 and bad.json()["error_type"] == "validation_error"
        assert c.post("/answer", json={"question": QUESTION, "stream": "yes"}).status_code == 422


def test_extractive_requests_skip_the_llm_and_keep_their_shape(
    client: TestClient, llm: ScriptedLlm, pipeline: Pipeline
) -> None:
    llm.script(default={"content": "never [1]."})
    for body in ({"question": QUESTION}, {"question": QUESTION, "mode": "extractive"}):
        response = client.post("/answer", json=body)
        assert response.status_code == 200
        payload = response.json()
        assert set(payload) == EXTRACTIVE_KEYS
        assert payload["evidence"] == extractive(pipeline)["evidence"]
    assert llm.calls() == []


def test_default_mode_comes_from_settings(pipeline: Pipeline, settings: Settings, llm: ScriptedLlm) -> None:
    n = cite(pipeline, "1889")
    llm.script(default={"content": f"Completed in 1889 [{n}]."})
    with make_client(pipeline, settings, llm, generation_mode="generative") as c:
        body = c.post("/answer", json={"question": QUESTION}).json()
        assert body["generation"]["answer"] == f"Completed in 1889 [{n}]."
        assert (
            set(c.post("/answer", json={"question": QUESTION, "mode": "extractive"}).json())
            == EXTRACTIVE_KEYS
        )


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_streaming_sends_evidence_then_deltas_then_the_checked_result(
    client: TestClient, llm: ScriptedLlm, pipeline: Pipeline
) -> None:
    n = cite(pipeline, "1889")
    chunks = ["The Eiffel ", "Tower was completed ", f"in 1889 [{n}]."]
    llm.script(queue=[{"chunks": chunks}])
    with client.stream(
        "POST", "/answer", json={"question": QUESTION, "mode": "generative", "stream": True}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    kinds = [kind for kind, _ in events]
    assert kinds == ["evidence", "delta", "delta", "delta", "done"]
    first = events[0][1]
    assert first["evidence"][n - 1]["n"] == n and "1889" in first["evidence"][n - 1]["text"]
    assert [data["text"] for kind, data in events if kind == "delta"] == chunks
    done = events[-1][1]
    assert done["generation"]["answer"] == "".join(chunks) and done["generation"]["fallback_reason"] is None
    assert done["generation"]["citations"][0]["n"] == n and "generate" in done["timings_ms"]
    assert done["answer"] == extractive(pipeline)["answer"]


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"chunks": ["Completed in ", "1887 [{n}]."]}, "unsupported_number"),
        (
            {"content": "Completed in the year 1889 [{n}] by Gustave Eiffel.", "drop_after": 3},
            "connection_error",
        ),
    ],
)
def test_streamed_text_that_fails_ends_with_the_fallback(
    client: TestClient, llm: ScriptedLlm, pipeline: Pipeline, script: dict[str, Any], reason: str
) -> None:
    n = cite(pipeline, "1889")
    behaviour = {
        k: [c.replace("{n}", str(n)) for c in v]
        if isinstance(v, list)
        else v.replace("{n}", str(n))
        if isinstance(v, str)
        else v
        for k, v in script.items()
    }
    llm.script(default=behaviour)
    with client.stream(
        "POST", "/answer", json={"question": QUESTION, "mode": "generative", "stream": True}
    ) as r:
        events = sse_events(r.read().decode())
    assert events[0][0] == "evidence" and events[-1][0] == "done"
    assert any(kind == "delta" for kind, _ in events)  # text went out before the failure was known
    done = events[-1][1]
    assert done["generation"]["fallback_reason"] == reason and done["generation"]["answer"] is None
    assert done["answer"] == extractive(pipeline)["answer"]  # the fallback to show instead


def test_self_query_applies_only_known_fields_and_values(
    pipeline: Pipeline, settings: Settings, llm: ScriptedLlm
) -> None:
    proposal = '```json\n{"tags": "BOTANY", "colour": "red", "source": "nowhere.txt"}\n```'
    llm.script(rules=[{"contains": "metadata fields", "content": proposal}])
    with make_client(pipeline, settings, llm, generation_self_query=True) as c:
        body = c.post("/answer", json={"question": "What do the roots of plants absorb?"}).json()
        gen = body["generation"]
        assert gen["mode"] == "extractive" and gen["self_query_filters"] == {"tags": ["botany"]}
        assert {e["doc_id"] for e in body["evidence"]} == {"roots"}
        assert "self_query" in body["timings_ms"]
        (call,) = llm.calls()
        schema = call["body"]["response_format"]["json_schema"]["schema"]
        assert schema["additionalProperties"] is False
        assert schema["properties"]["tags"]["anyOf"][0]["enum"] == ["biology", "botany"]
        assert "doc_id" not in schema["properties"] and "title" not in schema["properties"]
        # the request's own filter on a field wins over the LLM's
        body = c.post("/answer", json={"question": "roots", "filters": {"tags": "biology"}}).json()
        assert body["generation"]["self_query_filters"] is None
        assert {e["doc_id"] for e in body["evidence"]} <= {"photo", "roots"}


def test_self_query_that_excludes_everything_is_dropped(
    pipeline: Pipeline, settings: Settings, llm: ScriptedLlm
) -> None:
    sources = sorted({d.metadata["source"] for d in pipeline.bundle.documents if d.id == "paris.md"})
    llm.script(rules=[{"contains": "metadata fields", "content": json.dumps({"source": sources[0]})}])
    with make_client(pipeline, settings, llm, generation_self_query=True) as c:
        body = c.post("/answer", json={"question": "roots", "filters": {"tags": "botany"}}).json()
        assert body["evidence"] and body["generation"]["self_query_filters"] is None


def test_expansion_retrieves_paraphrases_and_reports_them(
    pipeline: Pipeline, settings: Settings, llm: ScriptedLlm
) -> None:
    reply = "1. Which things do roots take up?\n- which things do roots take up?\nWhat do roots absorb?\n\nroot uptake of soil minerals"
    llm.script(rules=[{"contains": "Write 2 different ways", "content": reply}])
    with make_client(pipeline, settings, llm, generation_expansions=2) as c:
        body = c.post("/answer", json={"question": "What do roots absorb?", "rerank": False}).json()
        assert body["generation"]["expansions"] == [
            "Which things do roots take up?",
            "root uptake of soil minerals",
        ]
        assert "expand" in body["timings_ms"] and "roots" in {e["doc_id"] for e in body["evidence"]}
        # the LLM failing only means retrieval without paraphrases
        llm.script(default={"status": 500})
        failed = metric(c, "rag_generation_fallbacks_total", reason="server_error", stage="expand")
        body = c.post("/answer", json={"question": "What do roots absorb?", "rerank": False}).json()
        assert body["generation"]["expansions"] == [] and body["evidence"]
        assert (
            metric(c, "rag_generation_fallbacks_total", reason="server_error", stage="expand") == failed + 1
        )


def test_metrics_and_info(client: TestClient, llm: ScriptedLlm, pipeline: Pipeline) -> None:
    n = cite(pipeline, "1889")
    llm.script(default={"content": f"Completed in 1889 [{n}]."})
    names = [
        ("rag_generation_seconds_count", {"stage": "generate"}),
        ("rag_stage_seconds_count", {"stage": "generate"}),
        ("rag_generation_tokens_total", {"stage": "generate", "kind": "completion"}),
        ("rag_generation_tokens_total", {"stage": "generate", "kind": "prompt"}),
    ]
    before = [metric(client, name, **labels) for name, labels in names]
    generative(client)
    after = [metric(client, name, **labels) for name, labels in names]
    assert after[0] == before[0] + 1 and after[1] == before[1] + 1
    assert after[2] == before[2] + 4  # "Completed in 1889 [n]." is 4 tokens to the scripted server
    assert after[3] > before[3]
    info = client.get("/info").text
    assert API_KEY not in info and '"generation_model":"scripted-model"' in info.replace(" ", "")


def test_a_bad_request_costs_no_llm_call(pipeline: Pipeline, settings: Settings, llm: ScriptedLlm) -> None:
    llm.script(default={"content": "a paraphrase"})
    with make_client(pipeline, settings, llm, generation_expansions=2, generation_self_query=True) as c:
        response = c.post(
            "/answer", json={"question": QUESTION, "mode": "generative", "filters": {"nope": "x"}}
        )
        assert response.status_code == 422 and response.json()["error_type"] == "query_error"
        assert llm.calls() == []
