"""Fixtures for the deployment tests: Helm (from npm), the rendered manifests, the app's routes and metrics,
and a loopback Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helm_tool import Helm
from kustomize import render as kustomize
from manifests import CI_VALUES, K8S, Obj
from prometheus_client.parser import text_string_to_metric_families
from rag_testkit.helm import install_helm
from rag_testkit.launch import make_run
from rag_testkit.tools import Prometheus, require_tool, start_prometheus


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(install_helm(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def renderings(helm: Helm) -> dict[str, list[Obj]]:
    """Every rendering the tests check (manifests.RENDERINGS), by name."""
    out: dict[str, list[Obj]] = {
        "chart-defaults": helm.template(),
        "k8s": kustomize(K8S).objects,
        "k8s+hpa-in-flight": kustomize(K8S, ("components/hpa-in-flight",)).objects,
    }
    for path in CI_VALUES:
        out[f"chart-{path.name.removesuffix('-values.yaml')}"] = helm.template(path)
    return out


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A loopback Prometheus scraping nothing: its HTTP API parses queries (/api/v1/format_query)."""
    with start_prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture(scope="session")
def app_routes(settings: Any) -> dict[str, set[str]]:
    """Path -> HTTP methods, from the app itself (no pipeline needed: routes exist before loading)."""
    from rag.api import create_app

    paths = create_app(settings).openapi()["paths"]
    return {path: {method.upper() for method in operations} for path, operations in paths.items()}


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory, sample_bundle: Path) -> Iterator[str]:
    """`make run` (its default models) over the sample bundle. Its own process, so its /metrics holds only its
    own traffic."""
    service = make_run(
        tmp_path_factory.mktemp("service"),
        bundle=sample_bundle,
        env={
            # One worker: the answer cache is per worker, and the traffic below needs a hit on demand.
            "RAG_WORKERS": "1",
            # Reranker probabilities never fall below -1 and cosines never reach 2: a reranked question is
            # answered, the same question with "rerank": false abstains. Both outcomes, on demand.
            "RAG_ABSTAIN_RERANK_THRESHOLD": "-1",
            "RAG_ABSTAIN_THRESHOLD": "2",
        },
    )
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture(scope="session")
def exported_metrics(live_service: str) -> dict[str, dict[str, set[str]]]:
    """Sample name -> label -> values, scraped from the service's /metrics after real traffic: an answer, a
    cache hit, an abstention and a rejected question."""
    question = "When was the Eiffel Tower completed?"
    bodies = [
        {"question": question},
        {"question": question},  # a cache hit
        {"question": question, "rerank": False},
    ]
    outcomes = [httpx.post(f"{live_service}/answer", json=body, timeout=60).json() for body in bodies]
    assert [(o["abstained"], o["cache"]["hit"]) for o in outcomes] == [
        (False, False),
        (False, True),
        (True, False),
    ]
    assert httpx.post(f"{live_service}/answer", json={"question": ""}, timeout=10).status_code == 422
    text = httpx.get(f"{live_service}/metrics", timeout=10).text
    samples: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = samples.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                labels.setdefault(label, set()).add(value)
    return samples
