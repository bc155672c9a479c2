"""The SLO alerts under promtool, and the Grafana dashboard's queries against a real Prometheus parser and
the metrics the app really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_tool import Helm
from manifests import CHART, RENDERINGS, Obj, of_kind
from monitoring import as_prometheus_sees_it, dashboard_queries, load_dashboard, rule_groups
from promql import Names, names
from rag_testkit.tools import Prometheus

ALERTS_TEST = Path(__file__).parent / "alerts_test.yaml"
# Labels Prometheus and the Operator attach to every scraped series; the app does not export them.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "endpoint", "container"}
# Series Prometheus makes itself for every scrape target.
PROMETHEUS_SERIES = {"up"}
# What the issue asks the dashboard to show.
REQUIRED_PANELS = {
    "Request rate",
    "Latency percentiles per stage",
    "Abstention rate",
    "Cache hit rate",
    "Ready pods",
    "Index version",
}


def write_rules(objects: list[Obj], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(objects)}, sort_keys=False))
    return path


WITH_RULES = [name for name in RENDERINGS if name in ("k8s", "chart-all-on", "chart-monitoring")]


@pytest.mark.parametrize("name", WITH_RULES)
def test_promtool_checks_the_rules(
    renderings: dict[str, list[Obj]], name: str, promtool: str, tmp_path: Path
) -> None:
    rules = write_rules(renderings[name], tmp_path)
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_alert_unit_tests_pass(renderings: dict[str, list[Obj]], promtool: str, tmp_path: Path) -> None:
    write_rules(renderings["chart-monitoring"], tmp_path)  # the chart's defaults; k8s/ holds the same
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    result = subprocess.run(
        [promtool, "test", "rules", ALERTS_TEST.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case(renderings: dict[str, list[Obj]]) -> None:
    alerts = {
        rule["alert"] for group in rule_groups(renderings["chart-monitoring"]) for rule in group["rules"]
    }
    cases = [
        case for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts == {"RagHighErrorRatio", "RagLatencyP99High", "RagPodsNotReady", "RagAbstentionSpike"} | {
        "RagIndexStale"
    }
    assert fires == alerts and silent == alerts


def test_rule_thresholds_come_from_values(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"  # a file: Helm 3.10's --set reads 0.005 as a string
    values.write_text(
        yaml.safe_dump(
            {
                "prometheusRule": {
                    "enabled": True,
                    "errorRatio": 0.005,
                    "latencyP99Seconds": 0.5,
                    "indexMaxAgeDays": 30,
                    "notReadyFor": "20m",
                }
            }
        )
    )
    objects = helm.template(values)
    rules = {rule["alert"]: rule for rule in rule_groups(objects)[0]["rules"]}
    assert rules["RagHighErrorRatio"]["expr"].count("> 0.005") == 2
    assert rules["RagLatencyP99High"]["expr"].rstrip().endswith("> 0.5")
    assert "> 30 * 86400" in rules["RagIndexStale"]["expr"]
    assert rules["RagPodsNotReady"]["for"] == "20m"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_dashboard_has_the_panels_and_a_sound_layout(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert {p["title"] for p in panels} >= REQUIRED_PANELS
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job"}


def test_every_dashboard_query_parses_in_prometheus(
    dashboard: dict[str, Any], prometheus: Prometheus
) -> None:
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 14
    for query in queries:
        prometheus.format_query(as_prometheus_sees_it(query))
    with pytest.raises(AssertionError, match="parse error"):  # the check itself can fail
        prometheus.format_query("sum(rate(rag_answers_total[5m])")


def unexported(found: Names, exported: dict[str, dict[str, set[str]]], allowed: set[str]) -> list[str]:
    """Metrics, labels and label values a query names that the app's /metrics does not have."""
    problems = [f"metric {m}" for m in found.metrics - set(exported) - allowed]
    for metric, label, op, value in found.matchers:
        if label in TARGET_LABELS or metric not in exported:
            continue
        values = exported[metric].get(label)
        if values is None:
            problems.append(f"label {metric}{{{label}}}")
        elif label == "status" and all(re.fullmatch(r"[1-5]xx", v) for v in values):
            # The instrumentator exports status classes; traffic cannot produce a 5xx on demand, so any
            # class is accepted once the exported values show the grouping.
            if not re.fullmatch(r"([1-5]xx\|?)+", value):
                problems.append(f'value {metric}{{{label}="{value}"}} (status classes: 2xx, 5xx, ...)')
        elif op == "=" and value not in values:
            problems.append(f'value {metric}{{{label}="{value}"}} (exported: {sorted(values)})')
        elif op == "=~" and re.fullmatch(r"[\w|]+", value):
            problems += [f'value {metric}{{{label}="{v}"}}' for v in value.split("|") if v not in values]
    known = {label for metric in found.metrics & set(exported) for label in exported[metric]}
    problems += [f"grouping label {g}" for g in found.grouping - known - TARGET_LABELS]
    return problems


def test_every_metric_the_dashboard_names_is_exported_by_the_app(
    dashboard: dict[str, Any], prometheus: Prometheus, exported_metrics: dict[str, dict[str, set[str]]]
) -> None:
    named: set[str] = set()
    for query in dashboard_queries(dashboard):
        found = names(prometheus.format_query(as_prometheus_sees_it(query)))
        assert found.metrics, query
        named |= found.metrics
        assert unexported(found, exported_metrics, allowed=set()) == [], query
    assert {"rag_stage_seconds_bucket", "rag_answers_total", "rag_cache_requests_total", "rag_ready"} <= named
    assert {"rag_index_info", "http_requests_total"} <= named


def test_every_metric_the_alerts_name_is_exported_by_the_app(
    renderings: dict[str, list[Obj]], prometheus: Prometheus, exported_metrics: dict[str, dict[str, set[str]]]
) -> None:
    for group in rule_groups(renderings["chart-monitoring"]):
        for rule in group["rules"]:
            found = names(prometheus.format_query(rule["expr"]))
            assert found.metrics, rule["alert"]
            assert unexported(found, exported_metrics, allowed=PROMETHEUS_SERIES) == [], rule["alert"]


def test_the_names_check_catches_a_wrong_name(
    prometheus: Prometheus, exported_metrics: dict[str, dict[str, set[str]]]
) -> None:
    wrong = 'sum by (stages) (rate(rag_answer_total{outcome="abstain"}[1m])) / sum(rag_answers_total{outcome="abstain"})'
    problems = unexported(names(prometheus.format_query(wrong)), exported_metrics, allowed=set())
    assert [problem.split(" (")[0] for problem in problems] == [
        "metric rag_answer_total",
        'value rag_answers_total{outcome="abstain"}',
        "grouping label stages",
    ]


def test_dashboard_configmap_carries_the_file_for_the_grafana_sidecar(
    helm: Helm, dashboard: dict[str, Any]
) -> None:
    objects = helm.template(CHART / "ci" / "monitoring-values.yaml")
    (configmap,) = [o for o in of_kind(objects, "ConfigMap") if "rag.json" in o.get("data", {})]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["rag.json"]) == dashboard
    default = helm.template()
    assert not [o for o in of_kind(default, "ConfigMap") if "rag.json" in o.get("data", {})]
