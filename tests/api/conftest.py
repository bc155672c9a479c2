from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rag_testkit.launch import Service, make_run


@pytest.fixture()
def gunicorn(tmp_path: Path, sample_bundle: Path) -> Iterator[Callable[..., Service]]:
    """`make run` serving the sample bundle with its default models (bge-small-en and MiniLM-L12 through
    onnx); `env` adds the settings a test is about, `bundle` replaces the sample bundle."""
    started: list[Service] = []

    def start(
        wait_ready: bool = True, bundle: Path | None = None, port: int | None = None, **env: str
    ) -> Service:
        instance = make_run(
            tmp_path / f"service-{len(started)}",
            bundle=bundle or sample_bundle,
            env=env,
            wait_ready=wait_ready,
            port=port,
        )
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
