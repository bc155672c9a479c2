"""gunicorn settings for the API: `gunicorn -c python:rag.api.gunicorn_conf 'rag.api:create_app()'`.

Every value comes from the one Settings object (`RAG_*`), so the container, the chart and `make run` set the
same variables. Choices, and why:
- Workers × ORT threads never exceed the CPUs this process may use (cgroup quota included). With neither
  set, each core gets one single-threaded worker: on 2 cores, 2 workers × 2 threads was the worst setting
  measured (a 20-pair rerank went from ~0.2 s to ~0.6 s under load; PERF_NOTES).
- keep-alive 75 s outlives the usual load-balancer idle timeout (60 s on AWS ALB, nginx, haproxy here), so the
  balancer, not the server, closes idle connections — no request races a server-side close.
- max_requests with jitter recycles workers (bounded memory growth) without restarting them all at once.
- graceful_timeout covers the drain period plus the request deadline, so no admitted request is cut off.
- preload (RAG_PRELOAD) loads the bundle and models in the master before fork: on by default for the onnx
  backend with 1 thread per worker (about half the memory, measured in docs/BENCHMARKS.md), off otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from rag.config import Settings, available_cpus

_settings = Settings()
_cpus = available_cpus()
_threads = _settings.threads or (max(1, _cpus // _settings.workers) if _settings.workers else 1)
_workers = _settings.workers or max(1, _cpus // _threads)
if _workers * _threads > _cpus:
    raise SystemExit(
        f"RAG_WORKERS={_workers} × RAG_THREADS={_threads} oversubscribes the {_cpus} CPUs this process may use"
    )
# Loading before fork shares the bundle's arrays and the model weights between workers (measured: 314 MB
# instead of 716 MB PSS per worker with a bge-base-sized reranker, docs/BENCHMARKS.md). It is the default
# only where it is safe: ONNX Runtime with one intra-op thread has no thread pool to lose in the fork; torch
# and multi-threaded sessions start thread pools that a forked child cannot use.
_preload = (
    _settings.preload if _settings.preload is not None else (_settings.backend == "onnx" and _threads == 1)
)
# The workers (and, when preloading, the app factory in this process) read Settings from the environment.
os.environ["RAG_THREADS"] = str(_threads)
os.environ["RAG_PRELOAD"] = "true" if _preload else "false"

# The tokenizers library's own thread pool does not survive a fork once used (preload warms up before it).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Prometheus multiprocess mode: one directory of per-worker files, set before any worker imports the metrics.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rag-prometheus-")

bind = _settings.bind
workers = _workers
worker_class = "uvicorn_worker.UvicornWorker"
keepalive = 75
timeout = int(_settings.request_timeout_seconds + 30)
graceful_timeout = int(_settings.drain_seconds + _settings.request_timeout_seconds + 5)
max_requests = 20_000
max_requests_jitter = 2_000
preload_app = _preload
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
loglevel = _settings.log_level.lower()
proc_name = "rag"
control_socket_disable = True  # gunicorn 27 would otherwise open one shared ~/.gunicorn/gunicorn.ctl per host
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "rag.api.logs.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    # Files of a previous run would be summed into this one's counters.
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    server.log.info(f"workers={workers} threads_per_worker={_threads} cpus={_cpus} preload={preload_app}")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
