"""/metrics as users get it: `make run` exactly as the README shows it, workers dying and being recycled, and
a metrics folder that cannot be written. (The image and the chart's pod: tests/deploy/test_pod_metrics.py.)"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rag_testkit.launch import Service, Started, make_run


def scrape(url: str) -> dict[str, float]:
    """Every sample of /metrics summed over its labels, by sample name (plus `name{label="value"}` keys)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            for label, value in sample.labels.items():
                key = f'{sample.name}{{{label}="{value}"}}'
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def test_make_run_as_the_readme_shows_exports_the_answers(tmp_path: Path) -> None:
    """A user's shell, `make run` (the Makefile builds its sample bundle when it has none), a few questions,
    then /metrics. Before the fix this was a 200 with an empty body."""
    service = make_run(tmp_path, timeout=900)
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            for body in (
                {"question": "How does the service decide to abstain?"},
                {"question": "How does the service decide to abstain?"},
                {"question": "What was the capital of Mongolia in 1820?"},  # off-topic: abstains
            ):
                assert client.post("/answer", json=body).status_code == 200
            assert client.post("/answer", json={"question": ""}).status_code == 422
        workers = len(service.workers())
        metrics = wait_metric(service, "rag_ready", workers)  # the other worker may still be warming up
    finally:
        service.stop()
    assert metrics["rag_answers_total"] == 3
    assert metrics['rag_answers_total{outcome="abstained"}'] >= 1
    assert metrics['rag_stage_seconds_count{stage="embed"}'] >= 2
    assert metrics["rag_request_failures_total"] == 1
    assert metrics["rag_index_info"] == 1 and metrics["rag_ready"] == workers


def wait_metric(service: Service, name: str, value: float, timeout: float = 60.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while (metrics := scrape(service.url)).get(name) != value:
        assert time.monotonic() < deadline, f"{name} = {metrics.get(name)}, expected {value}"
        time.sleep(0.2)
    return metrics


def answer(service: Service, count: int, tag: str) -> None:
    # a new connection each: any worker may take it, and recycling closes the old ones
    for i in range(count):
        response = httpx.post(
            f"{service.url}/answer", json={"question": f"What do roots absorb? {tag} {i}"}, timeout=60
        )
        assert response.status_code == 200, response.text


def test_totals_hold_when_a_worker_dies_or_is_recycled(gunicorn: Started) -> None:
    """RAG_MAX_REQUESTS (a low value, the setting under test) recycles workers; SIGKILL kills one. Counters
    summed over workers never go backwards, and a dead worker's live gauges leave the sum."""
    service = gunicorn(RAG_MAX_REQUESTS="100")
    wait_metric(service, "rag_ready", 2)
    answer(service, 6, "a")
    assert scrape(service.url)["rag_answers_total"] == 6

    victim = service.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victim in service.workers() or len(service.workers()) < 2:
        assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
        time.sleep(0.1)
    after_kill = wait_metric(service, "rag_ready", 2)  # the dead worker's 1 is gone, its successor's counts
    assert after_kill["rag_answers_total"] == 6
    assert after_kill["rag_in_flight_requests"] == 0

    # Until one worker has passed max_requests (100 ± 10) and been replaced. Not every worker: the kernel hands
    # one-at-a-time connections to whichever worker waits longest in accept, so a worker can go without any.
    survivors = set(service.workers())
    sent = 6
    while survivors <= set(service.workers()):
        assert sent < 400, "no worker was recycled"
        answer(service, 25, f"b{sent}")
        sent += 25
    recycled = wait_metric(service, "rag_ready", 2)
    assert recycled["rag_answers_total"] == sent
    assert recycled['rag_stage_seconds_count{stage="embed"}'] >= sent


def test_a_metrics_folder_that_cannot_be_written_stops_the_start(tmp_path: Path, sample_bundle: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    folder = blocker / "metrics"  # under a file: it can never be made
    service = make_run(
        tmp_path / "run",
        bundle=sample_bundle,
        env={"PROMETHEUS_MULTIPROC_DIR": str(folder)},
        wait_ready=False,
    )
    assert service.process.wait(60) != 0
    log = service.tail()
    assert f"metrics: cannot write Prometheus' per-worker files in '{folder}'" in log
    assert "Not a directory" in log
