"""Hot reload across a real S3 server, under load: no failed request, and a broken version never served."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import boto3
import httpx
from rag_testkit.launch import Started

from rag.artifacts import S3Location, S3Store, promote, pull_bundle, push_bundle
from rag.index import read_manifest


def versions_seen(url: str, n: int = 12) -> set[str]:
    """The versions the workers report (each request lands on whichever worker accepts it)."""
    return {httpx.get(f"{url}/info", timeout=5).json()["service"]["version"] for _ in range(n)}


def metric_sum(url: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines()
        if line.startswith(prefix)
    )


def test_hot_reload_swaps_under_load_and_keeps_serving_past_a_broken_version(
    gunicorn: Started,
    s3_server: str,
    bucket: str,
    sample_bundle: Path,
    other_bundle: Path,
    tmp_path: Path,
) -> None:
    s3 = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)
    push_bundle(s3, sample_bundle, "v1")
    push_bundle(s3, other_bundle, "v2")
    push_bundle(s3, sample_bundle, "v3-broken")
    client = boto3.client("s3", endpoint_url=s3_server)
    key = "rag/bundles/v3-broken/store.sqlite"
    damaged = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    damaged[len(damaged) // 2] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(damaged))
    promote(s3, "v1", "stable")
    served = tmp_path / "data" / "bundle"
    pull_bundle(s3, served, channel="stable")  # what the init container does

    service = gunicorn(
        bundle=served,
        RAG_ARTIFACTS_URI=f"s3://{bucket}/rag",
        RAG_S3_ENDPOINT_URL=s3_server,
        RAG_RELOAD_CHANNEL="stable",
        RAG_RELOAD_INTERVAL_SECONDS="0.3",
        RAG_ADMIN_KEY="adm",
        RAG_CACHE_SIZE="0",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    assert versions_seen(service.url) == {"v1"}

    stop = threading.Event()
    answers: list[int] = []
    ready: list[int] = []

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 90  # bounded even if the test fails midway
            while not stop.is_set() and time.monotonic() < deadline:
                answers.append(
                    http.post(f"{service.url}/answer", json={"question": "What orbits?"}).status_code
                )

    def probe() -> None:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 90
            while not stop.is_set() and time.monotonic() < deadline:
                ready.append(http.get(f"{service.url}/ready").status_code)
                time.sleep(0.05)

    threads = [threading.Thread(target=load) for _ in range(3)] + [threading.Thread(target=probe)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        promote(s3, "v2", "stable")
        deadline = time.monotonic() + 60
        while versions_seen(service.url) != {"v2"}:
            assert time.monotonic() < deadline, "the workers never moved to v2"
            time.sleep(0.2)
        metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
        v2_corpus = read_manifest(other_bundle).corpus_id
        assert f'rag_index_info{{corpus_id="{v2_corpus}",embedding_model=' in metrics
        assert 'version="v2"} 1.0' in metrics

        promote(s3, "v3-broken", "stable")
        deadline = time.monotonic() + 60
        while metric_sum(service.url, 'rag_reloads_total{result="failure"}') < 2:  # both workers rejected it
            assert time.monotonic() < deadline, "the broken version was never tried"
            time.sleep(0.2)
        time.sleep(1.0)
        assert versions_seen(service.url) == {"v2"}
        # on demand, too: refused with the reason, and v2 keeps serving
        refused = httpx.post(f"{service.url}/admin/reload", headers={"x-admin-key": "adm"}, timeout=30)
        assert refused.status_code == 502 and "v3-broken" in refused.json()["error"]
        assert httpx.post(f"{service.url}/admin/reload", timeout=5).status_code == 401
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert answers and set(answers) == {200}, {code: answers.count(code) for code in set(answers)}
    assert ready and set(ready) == {200}
    assert len(answers) > 50
