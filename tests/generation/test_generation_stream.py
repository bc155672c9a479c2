"""Streaming end to end: the real service (gunicorn + uvicorn worker) → the scripted inference server, over
loopback sockets both ways. Deltas must reach the client as the model writes them, not all at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rag_testkit.launch import make_run
from scripted_llm import API_KEY, ScriptedLlm

QUESTION = "When was the Eiffel Tower completed?"


@pytest.fixture()
def service(tmp_path: Path, sample_bundle: Path, llm_server: ScriptedLlm) -> Iterator[str]:
    """`make run` with generation on (the settings this test is about)."""
    server = make_run(
        tmp_path,
        bundle=sample_bundle,
        env={
            "RAG_GENERATION_BASE_URL": llm_server.url,  # the root: the client adds /v1
            "RAG_GENERATION_MODEL": "scripted-model",
            "RAG_GENERATION_API_KEY": API_KEY,
            "RAG_GENERATION_TIMEOUT_SECONDS": "5",
        },
    )
    try:
        yield server.url
    finally:
        server.stop()


def timed_events(url: str, body: dict[str, Any]) -> list[tuple[float, str, dict[str, Any]]]:
    """(seconds since the request, event, data) for each server-sent event, read as it arrives."""
    events: list[tuple[float, str, dict[str, Any]]] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{url}/answer", json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif fields:
                events.append((time.monotonic() - started, fields["event"], json.loads(fields["data"])))
                fields = {}
    return events


def test_stream_delivers_evidence_first_then_deltas_as_written(service: str, llm: ScriptedLlm) -> None:
    evidence = httpx.post(f"{service}/answer", json={"question": QUESTION}, timeout=30).json()["evidence"]
    n = next(i for i, e in enumerate(evidence, 1) if "1889" in e["text"])
    chunks = ["The Eiffel Tower ", "was completed ", "in 1889 ", f"[{n}]."]
    llm.script(queue=[{"chunks": chunks, "chunk_delay": 0.4}])

    events = timed_events(service, {"question": QUESTION, "mode": "generative", "stream": True})

    assert [kind for _, kind, _ in events] == ["evidence", "delta", "delta", "delta", "delta", "done"]
    arrival = {kind: t for t, kind, _ in reversed(events)}  # first arrival of each kind
    # The evidence is out before the model has finished writing, and the deltas are spread over the
    # ~1.6 s the scripted model takes: nothing was buffered until the end.
    assert events[-1][0] - arrival["evidence"] > 1.0
    deltas = [(t, data["text"]) for t, kind, data in events if kind == "delta"]
    assert [text for _, text in deltas] == chunks
    assert deltas[-1][0] - deltas[0][0] > 0.8
    done = events[-1][2]
    assert done["generation"]["answer"] == "".join(chunks) and done["generation"]["fallback_reason"] is None
    assert done["generation"]["usage"]["completion_tokens"] == len("".join(chunks).split())
    metrics = httpx.get(f"{service}/metrics", timeout=10).text  # summed over workers (multiprocess)
    assert 'rag_stage_seconds_count{stage="generate"} 1.0' in metrics
    assert 'rag_generation_seconds_count{stage="generate"} 1.0' in metrics


def test_stream_check_failure_after_streaming_gives_the_extractive_fallback(
    service: str, llm: ScriptedLlm
) -> None:
    llm.script(queue=[{"chunks": ["It was completed ", "in 1887 [1]."]}])
    events = timed_events(service, {"question": QUESTION, "mode": "generative", "stream": True})
    assert [kind for _, kind, _ in events] == ["evidence", "delta", "delta", "done"]
    done = events[-1][2]
    assert done["generation"]["fallback_reason"] == "unsupported_number"
    assert done["answer"] == events[0][2]["answer"] and "1889" in done["answer"]
