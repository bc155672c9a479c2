"""gunicorn settings for the API: `gunicorn -c python:rag.api.gunicorn_conf 'rag.api:create_app()'`.

Every value comes from the one Settings object (`RAG_*`), so the container, the chart and `make run` set the
same variables. Choices, and why:
- Workers × ORT threads never exceed the CPUs this process may use (cgroup quota included). With neither
  set, each core gets one single-threaded worker: on 2 cores, 2 workers × 2 threads was the worst setting
  measured (a 20-pair rerank went from ~0.2 s to ~0.6 s under load; PERF_NOTES).
- keep-alive 75 s outlives the usual load-balancer idle timeout (60 s on AWS ALB, nginx, haproxy here), so the
  balancer, not the server, closes idle connections — no request races a server-side close.
- max_requests (RAG_MAX_REQUESTS) with jitter recycles workers (bounded memory growth) without restarting
  them all at once.
- Prometheus multiprocess mode: every worker writes its values to files in one directory, and `/metrics` on
  any worker sums them. The directory is PROMETHEUS_MULTIPROC_DIR when set, else a new one under TMPDIR (the
  image's and the chart's /tmp). It must be chosen before prometheus_client is imported anywhere in this
  process: the library picks in-memory or file storage once, at import, and in-memory storage in a worker
  means an empty scrape. Importing this module imports no metrics (`rag.api` loads its app lazily), a worker
  whose values do not reach the directory refuses to boot, and a directory that cannot be written is a
  start-up error, never a silent empty /metrics.
- graceful_timeout covers the drain period plus the request deadline, so no admitted request is cut off.
- preload (RAG_PRELOAD) loads the bundle and models in the master before fork: on by default for the onnx
  backend with 1 thread per worker (about half the memory, measured in docs/BENCHMARKS.md), off otherwise.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from typing import Any

from rag.config import available_cpus, load_settings
from rag.errors import ConfigError

try:
    _settings = load_settings()
except ConfigError as exc:  # gunicorn prints it and exits; the message names settings, never their values
    raise SystemExit(str(exc)) from None
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


def _metrics_directory() -> tuple[str, bool]:
    """The multiprocess directory, and whether this config made it (and so removes it at exit)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    try:
        if given:
            os.makedirs(given, exist_ok=True)
        folder = given or tempfile.mkdtemp(prefix="rag-prometheus-")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        where = given or os.environ.get("TMPDIR") or "/tmp"
        raise SystemExit(
            f"metrics: cannot write Prometheus' per-worker files in {where!r} ({exc}). "
            "Mount a writable /tmp (the chart's emptyDir, `--tmpfs /tmp` with podman) or set "
            "PROMETHEUS_MULTIPROC_DIR to a writable directory."
        ) from None
    return folder, not given


_metrics_dir, _made_metrics_dir = _metrics_directory()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
_values = sys.modules.get("prometheus_client.values")
if _values is not None and _values.ValueClass is _values.MutexValue:
    raise SystemExit(
        "metrics: prometheus_client was imported before gunicorn_conf set PROMETHEUS_MULTIPROC_DIR, so the "
        "workers would keep their metrics in memory and /metrics would be empty"
    )

bind = _settings.bind
workers = _workers
worker_class = "rag.api.worker.RagWorker"  # uvicorn's, with bounded headers and a header deadline
keepalive = 75
timeout = int(_settings.request_timeout_seconds + 30)
graceful_timeout = int(_settings.drain_seconds + _settings.request_timeout_seconds + 5)
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests // 10
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
    # Files of a previous run would be summed into this one's counters. Only the metric files go: the
    # directory may be one the operator chose for other files too.
    for stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(stale)
    server.log.info(
        f"workers={workers} threads_per_worker={_threads} cpus={_cpus} preload={preload_app} "
        f"max_requests={max_requests} metrics_dir={_metrics_dir}"
    )


def post_worker_init(worker: Any) -> None:
    # Runs in the worker once the app is loaded: a worker whose metrics would stay in memory fails to boot,
    # and gunicorn stops with the reason in its log.
    from rag.api.metrics import require_shared_storage

    require_shared_storage(_metrics_dir)


def child_exit(server: Any, worker: Any) -> None:
    # A dead or recycled worker's counters stay in the sum (totals never go backwards); its live gauges
    # (in-flight, ready, index info) leave it.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
