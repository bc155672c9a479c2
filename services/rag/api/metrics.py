"""Every Prometheus metric the service exports, defined once, with buckets set by unit.

Under gunicorn the workers are separate processes: prometheus_client's multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, set by the gunicorn config before any worker imports this module) makes
`/metrics` on any worker report the sum over all of them. Gauges declare how they combine across workers.
"""

from __future__ import annotations

import glob
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

__all__ = [
    "ANSWERS",
    "CACHE_REQUESTS",
    "CONTENT_TYPE_LATEST",
    "FAILURES",
    "GENERATION_FALLBACKS",
    "GENERATION_SECONDS",
    "GENERATION_TOKENS",
    "INDEX_CREATED",
    "INDEX_INFO",
    "IN_FLIGHT",
    "MODEL_LOAD_SECONDS",
    "READY",
    "RELOADS",
    "STAGE_SECONDS",
    "render",
    "require_shared_storage",
]


def _geometric(start: float, factor: float, count: int) -> list[float]:
    return [round(start * factor**i, 6) for i in range(count)]


# Durations: ×1.5 from 0.25 ms to ~70 s covers a BM25 lookup and a cold reranker alike.
DURATION_BUCKETS = _geometric(0.00025, 1.5, 32)

STAGE_SECONDS = Histogram(
    "rag_stage_seconds",
    "Time spent in each pipeline stage (embed, bm25, dense, fuse, rerank, mmr, ...)",
    ["stage"],
    buckets=DURATION_BUCKETS,
)
ANSWERS = Counter("rag_answers_total", "Answers by outcome", ["outcome"])
CACHE_REQUESTS = Counter("rag_cache_requests_total", "Answer-cache lookups", ["result"])
FAILURES = Counter("rag_request_failures_total", "Requests that ended in an error, by kind", ["error_type"])
IN_FLIGHT = Gauge(
    "rag_in_flight_requests", "Requests admitted and not yet answered", multiprocess_mode="livesum"
)
# live*: a dead or recycled worker's values leave the sum (it may have served a version since replaced).
INDEX_INFO = Gauge(
    "rag_index_info",
    "The bundle being served (value 1)",
    ["version", "corpus_id", "embedding_model"],
    multiprocess_mode="livemax",
)
# The served bundle's build time, for an "index older than N days" alert. livemax: the master (preload) and
# dead workers must not pull the value to 0 or keep a replaced bundle's time.
INDEX_CREATED = Gauge(
    "rag_index_created_timestamp_seconds",
    "Build time of the bundle being served (manifest created_at), Unix seconds",
    multiprocess_mode="livemax",
)
MODEL_LOAD_SECONDS = Gauge(
    "rag_model_load_seconds", "Time to load each part at startup", ["part"], multiprocess_mode="livemax"
)
READY = Gauge("rag_ready", "1 when the worker is ready to serve", multiprocess_mode="livesum")
RELOADS = Counter("rag_reloads_total", "Hot reloads of a new bundle version, by result", ["result"])
# Optional generation (rag.generation): one sample per call to the inference server, retries included.
GENERATION_SECONDS = Histogram(
    "rag_generation_seconds",
    "Calls to the inference server by stage (generate, expand, self_query), retries included",
    ["stage"],
    buckets=DURATION_BUCKETS,
)
GENERATION_TOKENS = Counter(
    "rag_generation_tokens_total",
    "Tokens the inference server reported, by stage and kind",
    ["stage", "kind"],
)
GENERATION_FALLBACKS = Counter(
    "rag_generation_fallbacks_total",
    "LLM results not used, by stage and reason (generate: the extractive answer stood instead)",
    ["stage", "reason"],
)


def require_shared_storage(folder: str | None) -> None:
    """Raise unless this process's metric values go to files in the multiprocess directory.

    prometheus_client chooses in-memory or file storage once, when it is first imported; imported before
    PROMETHEUS_MULTIPROC_DIR was set, a gunicorn worker keeps its values to itself and every scrape is empty.
    """
    if folder is None:
        raise RuntimeError("metrics: PROMETHEUS_MULTIPROC_DIR is not set in this worker")
    IN_FLIGHT.inc(0)  # the first write in a forked process opens that process's own file
    if not glob.glob(os.path.join(folder, f"*_{os.getpid()}.db")):
        raise RuntimeError(
            f"metrics: this worker's values are kept in memory, not in {folder}: prometheus_client was "
            "imported before PROMETHEUS_MULTIPROC_DIR was set, so /metrics would be empty"
        )


def render(multiprocess_dir: str | None) -> bytes:
    """The values summed over every worker's files in `multiprocess_dir` (RAG's gunicorn config sets
    PROMETHEUS_MULTIPROC_DIR), else this process's own."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
