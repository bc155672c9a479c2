"""Metrics where users deploy: the image run as the README shows and the pod the chart renders, scraped by a
real Prometheus, and every query of the dashboard and the alert rules evaluated against what it collected.

The service gets only what those launch paths give it (rag_testkit/containers.py); the port is the one exception,
as podman here has host networking only.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from helm_tool import Helm
from manifests import Obj, container, container_env, pod_template, workload
from monitoring import as_prometheus_sees_it, dashboard_queries, load_dashboard, rule_groups
from promql import names
from rag_testkit.containers import TEST_AWS, podman, pulled_volume, readme_pull, serving_container
from rag_testkit.tools import Prometheus, start_prometheus

from rag.artifacts import S3Location, S3Store, promote, push_bundle

pytestmark = pytest.mark.image

# Labels Kubernetes service discovery would attach; the dashboard selects on namespace and job.
TARGET = {"namespace": "test", "pod": "rag-0"}
DASHBOARD_VARIABLES = {"$namespace": TARGET["namespace"], "$job": "rag"}


def publish(s3_server: str, bucket: str, bundle: Path) -> str:
    s3 = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)
    push_bundle(s3, bundle, "v1")
    promote(s3, "v1", "stable")
    return f"s3://{bucket}/rag"


def wait_value(prometheus: Prometheus, expr: str, at_least: float, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        result = prometheus.query(expr)
        value = float(result[0]["value"][1]) if result else None
        if value is not None and value >= at_least:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{expr} = {value}, expected ≥ {at_least} within {timeout:g} s")


def traffic(url: str, round_: int) -> int:
    """Answers of every kind the dashboard shows: computed, a cache hit, an abstention, and a rejected
    question. Returns how many answers the service counted."""
    question = f"When was the Eiffel Tower completed? ({round_})"
    nothing = {"question": f"What do roots absorb? ({round_})", "filters": {"tags": "no-such-tag"}}
    # One keep-alive connection: one worker answers all four, and the answer cache is per worker.
    with httpx.Client(timeout=60) as client:
        first, hit, abstained = (
            client.post(f"{url}/answer", json=body)
            for body in ({"question": question}, {"question": question}, nothing)
        )
        assert first.status_code == hit.status_code == abstained.status_code == 200
        assert not first.json()["cache"]["hit"] and hit.json()["cache"]["hit"]
        assert abstained.json()["abstained"]
        assert client.post(f"{url}/answer", json={"question": ""}).status_code == 422
    return 3


def check_monitoring_queries(prometheus: Prometheus, url: str, objects: list[Obj]) -> None:
    """Two rounds of traffic a few scrapes apart (rate() needs an increase), then every query."""
    wait_value(prometheus, 'up{job="rag"}', 1)
    answers = 0
    for round_ in (1, 2):
        answers += traffic(url, round_)
        wait_value(prometheus, "sum(rag_answers_total)", answers)
    time.sleep(2.5)  # two more scrapes after the last increase

    for expr in (
        "sum(rag_answers_total)",
        'sum(rag_stage_seconds_count{stage="embed"})',
        "sum(rag_request_failures_total)",
        "sum(rag_index_info)",
        'sum(rag_answers_total{outcome="abstained"})',
        'sum(rag_cache_requests_total{result="hit"})',
    ):
        assert wait_value(prometheus, expr, 1) > 0, expr

    for query in dashboard_queries(load_dashboard()):
        expr = as_prometheus_sees_it(query, DASHBOARD_VARIABLES)
        assert prometheus.query(expr), f"the dashboard's {expr!r} has no data"

    # A healthy, freshly built service fires no alert, and every series an alert reads exists.
    for group in rule_groups(objects):
        for rule in group["rules"]:
            assert prometheus.query(rule["expr"]) == [], f"{rule['alert']} fires on a healthy service"
            for metric in names(prometheus.format_query(rule["expr"])).metrics:
                assert prometheus.query(f'count({metric}{{job="rag"}})'), f"{rule['alert']}: no {metric}"


def test_prometheus_reads_the_image_run_as_the_readme_shows(
    image: str, s3_server: str, bucket: str, sample_bundle: Path, helm: Helm, tmp_path: Path
) -> None:
    uri = publish(s3_server, bucket, sample_bundle)
    rules = helm.template(sets=("prometheusRule.enabled=true",))
    with (
        pulled_volume(image, *readme_pull(s3_server, uri, "stable")) as volume,
        serving_container(image, f"{volume}:/artifacts:ro") as (_, url),
        start_prometheus(tmp_path / "prometheus", [url.removeprefix("http://")], TARGET) as prometheus,
    ):
        check_monitoring_queries(prometheus, url, rules)


def kubelet_expand(argument: str, env: dict[str, str]) -> str:
    """`$(VAR)` in a container's args, as the kubelet expands it."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), argument)


def test_the_pod_the_chart_renders_exports_its_metrics(
    image: str, s3_server: str, bucket: str, sample_bundle: Path, helm: Helm
) -> None:
    """Both containers of the rendered pod, each with its own environment only (ConfigMap + env; the
    credentials a Secret would hold)."""
    uri = publish(s3_server, bucket, sample_bundle)
    objects = helm.template(
        sets=(f"artifacts.uri={uri}", f"artifacts.endpointUrl={s3_server}", "artifacts.channel=stable")
    )
    spec = pod_template(workload(objects))["spec"]
    init_env = {**container_env(objects, spec, "pull-bundle"), **TEST_AWS}
    init = container(spec, "pull-bundle")
    assert init["command"] == ["rag"]
    args = [kubelet_expand(a, init_env) for a in init["args"]]
    with (
        pulled_volume(image, args, init_env) as volume,
        serving_container(image, f"{volume}:/artifacts:ro", container_env(objects, spec, "rag")) as (
            name,
            url,
        ),
    ):
        workers = re.search(r"workers=(\d+) ", podman("logs", name).stderr)
        assert workers, "gunicorn logged no worker count"
        answered = httpx.post(f"{url}/answer", json={"question": "When was the Eiffel Tower completed?"})
        assert answered.status_code == 200
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert re.search(r'^rag_answers_total\{outcome="\w+"\} 1\.0$', metrics, re.MULTILINE), metrics[:2000]
        # summed over the pod's workers, once every one has warmed up
        deadline = time.monotonic() + 30
        while not re.search(rf"^rag_ready {workers[1]}\.0$", metrics, re.MULTILINE):
            assert time.monotonic() < deadline, metrics[:2000]
            time.sleep(0.3)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
