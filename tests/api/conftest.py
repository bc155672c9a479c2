from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tools import Gunicorn, start_gunicorn, stop


@pytest.fixture()
def gunicorn(
    tmp_path: Path, tiny_models: dict[str, Path], sample_bundle: Path
) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(wait_ready: bool = True, **env: str) -> Gunicorn:
        defaults = {
            "RAG_EMBEDDING_MODEL": str(tiny_models["e5"]),
            "RAG_RERANKER_MODEL": str(tiny_models["reranker"]),
            "RAG_BUNDLE_DIR": str(sample_bundle),
            "RAG_WORKERS": "2",
            "RAG_THREADS": "1",
        }
        instance = start_gunicorn(tmp_path / f"gunicorn-{len(started)}", wait_ready, **{**defaults, **env})
        started.append(instance)
        return instance

    yield start
    for instance in started:
        stop(instance.process)
