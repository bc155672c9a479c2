from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tools import GUNICORN_ARGV, Gunicorn, free_port, stop, wait_for


@pytest.fixture()
def gunicorn(
    tmp_path: Path, tiny_models: dict[str, Path], sample_bundle: Path
) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(wait_ready: bool = True, **env: str) -> Gunicorn:
        port = free_port()
        name = f"gunicorn-{len(started)}"
        metrics_dir = tmp_path / f"{name}-metrics"
        metrics_dir.mkdir()
        log = tmp_path / f"{name}.log"
        environment = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "RAG_EMBEDDING_MODEL": str(tiny_models["e5"]),
            "RAG_RERANKER_MODEL": str(tiny_models["reranker"]),
            "RAG_BUNDLE_DIR": str(sample_bundle),
            "RAG_BIND": f"127.0.0.1:{port}",
            "RAG_WORKERS": "2",
            "RAG_THREADS": "1",
            "RAG_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **env,
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                GUNICORN_ARGV,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        instance = Gunicorn(process, port, metrics_dir, log)
        started.append(instance)
        if wait_ready:
            try:
                wait_for(f"{instance.url}/ready", 200, timeout=90, process=process)
            except AssertionError:
                print(log.read_text()[-3000:])
                raise
        return instance

    yield start
    for instance in started:
        stop(instance.process)
