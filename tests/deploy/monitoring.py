"""The chart's monitoring as Prometheus and Grafana read it: the rule groups of the rendered PrometheusRule and
the dashboard's queries with Grafana's variables filled in."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from manifests import CHART, Obj, of_kind

__all__ = ["DASHBOARD", "as_prometheus_sees_it", "dashboard_queries", "load_dashboard", "rule_groups"]

DASHBOARD = CHART / "dashboards" / "rag.json"
# Grafana's variables, replaced as Grafana would before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h"}


def rule_groups(objects: list[Obj]) -> list[dict[str, Any]]:
    (rule,) = of_kind(objects, "PrometheusRule")
    return list(rule["spec"]["groups"])


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(SELECTOR, LABEL): Grafana asks Prometheus for SELECTOR's series
            match = re.fullmatch(
                r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)", variable["query"]["query"]
            )
            assert match, variable["query"]
            queries.append(f"group by ({match['label']}) ({match['selector']})")
    return queries


def as_prometheus_sees_it(query: str, variables: Mapping[str, str] | None = None) -> str:
    """The query Grafana sends: its own variables filled in, and the dashboard's (`$namespace`, `$job`) when
    `variables` gives them."""
    for variable, value in {**(variables or {}), **GRAFANA_VARIABLES}.items():
        query = query.replace(variable, value)
    assert "$" not in re.sub(r'"[^"]*"', "", query), f"an unknown Grafana variable in {query!r}"
    return query
