from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from launch import Service, make_run


@pytest.fixture()
def gunicorn(
    tmp_path: Path, tiny_models: dict[str, Path], sample_bundle: Path
) -> Iterator[Callable[..., Service]]:
    """`make run` serving the sample bundle with the tiny models (named settings); `env` adds the settings a
    test is about, `bundle` replaces the sample bundle."""
    started: list[Service] = []

    def start(
        wait_ready: bool = True, bundle: Path | None = None, port: int | None = None, **env: str
    ) -> Service:
        models = {
            "RAG_EMBEDDING_MODEL": str(tiny_models["e5"]),
            "RAG_RERANKER_MODEL": str(tiny_models["reranker"]),
        }
        instance = make_run(
            tmp_path / f"service-{len(started)}",
            bundle=bundle or sample_bundle,
            env={**models, **env},
            wait_ready=wait_ready,
            port=port,
        )
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
