"""`make bench-ingest-latency`: /answer latency while an ingestion job builds on the same node, vs idle.

One real service (gunicorn, 2 workers × 1 ORT thread, MiniLM int8 ONNX, no reranker, answer cache off)
serves a bundle of the SciFact corpus. Two phases, each sending the SciFact test questions at concurrency 2
(two client threads, paced to --rate requests/s in all, default 20):
  idle    no job
  build   while `POST /ingest/start` builds the whole corpus again (no embedding cache: everything embedded)
          in its own process (nice 10, 1 thread); only requests that complete while the job is `running`
          count.
Reported: p50 / p99 / max per phase and the requests counted.

    python benchmarks/bench_ingest_latency.py           # SciFact, ~3-4 min of building
    python benchmarks/bench_ingest_latency.py --quick   # 100 documents: a dry run of the harness

Needs build/bench/minilm.onnx-int8 and an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
from rag_testkit.launch import make_run  # noqa: E402

DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
MODEL = ROOT / "build" / "bench" / "minilm.onnx-int8"
ADMIN = {"x-admin-key": "bench"}


def echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(ordered[-1], 2),
    }


def load(
    url: str, questions: list[str], keep_going: threading.Event, until: float, rate: float
) -> list[tuple[float, float]]:
    """(finish time, latency ms) of each request from 2 client threads sending `rate` requests/s in all (paced,
    not back to back: a saturating closed loop would starve the niced build), while `keep_going`, before
    `until`."""
    interval = 2.0 / rate
    results: list[tuple[float, float]] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = offset
            next_at = time.monotonic() + offset * interval / 2
            while keep_going.is_set() and time.monotonic() < until:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                started = time.perf_counter()
                response = http.post(f"{url}/answer", json={"question": questions[i % len(questions)]})
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                with lock:
                    results.append((time.monotonic(), elapsed))
                i += 2

    threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second, both clients together")
    parser.add_argument("--json-out")
    parser.add_argument(
        "--bundle",
        help="serve this bundle of the same corpus and model (e.g. bench-incremental's cold build)",
    )
    args = parser.parse_args()

    from rag.config import BuildConfig, Settings
    from rag.eval.datasets import load_beir
    from rag.index import Builder
    from rag.models import load_embedder

    data = load_beir(DATA)
    documents = data.documents[:100] if args.quick else data.documents
    questions = list(data.queries.values())
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    corpus = work / "corpus"
    corpus.mkdir()
    with (corpus / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc in documents:
            handle.write(json.dumps({"id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    settings = Settings(backend="onnx", embedding_model=str(MODEL), reranker_model=None, threads=1)
    served = Path(args.bundle) if args.bundle else work / "bundle"
    if not args.bundle:
        echo(f"building the served bundle ({len(documents)} documents)")
        Builder(load_embedder(settings), BuildConfig()).build(documents, served, overwrite=True)

    env = {
        "RAG_BACKEND": "onnx",
        "RAG_EMBEDDING_MODEL": str(MODEL),
        "RAG_RERANKER_MODEL": "",
        "RAG_WORKERS": "2",
        "RAG_THREADS": "1",
        "RAG_CACHE_SIZE": "0",
        "RAG_ADMIN_KEY": "bench",
        "RAG_INGEST_ENABLED": "true",
        "RAG_INGEST_DIR": str(work / "jobs"),
        "RAG_INGEST_ROOTS": str(corpus.parent),
        "RAG_ABSTAIN_THRESHOLD": "-1",
    }
    server = make_run(work / "server", bundle=served, env=env)
    try:
        go = threading.Event()
        go.set()
        idle_seconds = 10.0 if args.quick else args.idle_seconds
        echo(f"idle: {idle_seconds:.0f}s of /answer, {args.rate:g}/s")
        idle = [ms for _, ms in load(server.url, questions, go, time.monotonic() + idle_seconds, args.rate)]

        job = httpx.post(f"{server.url}/ingest/start", json={"corpus": str(corpus)}, headers=ADMIN).json()
        window: dict[str, float] = {}

        def watch() -> None:
            while True:
                state = httpx.get(f"{server.url}/ingest/status/{job['id']}", headers=ADMIN).json()
                if state["state"] == "running" and "start" not in window:
                    window["start"] = time.monotonic()
                if state["state"] in ("succeeded", "failed"):
                    window["end"] = time.monotonic()
                    window["ok"] = float(state["state"] == "succeeded")
                    go.clear()
                    return
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        echo(f"build: /answer, {args.rate:g}/s, while job {job['id']} runs")
        during = load(server.url, questions, go, time.monotonic() + 3600, args.rate)
        watcher.join()
        busy = [ms for at, ms in during if window.get("start", 0) <= at <= window.get("end", 0)]
    finally:
        server.stop()
    report: dict[str, Any] = {
        "documents": len(documents),
        "idle": percentiles(idle),
        "during_build": percentiles(busy),
        "rate_per_second": args.rate,
        "build_seconds": round(window.get("end", 0) - window.get("start", 0), 1),
        "job_succeeded": bool(window.get("ok")),
        "load_average_at_end": os.getloadavg()[0],
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["job_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
