"""Reading rendered Kubernetes objects: lookups, pod specs, resource quantities, label selectors."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "rag"
K8S = REPO / "k8s"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
K8S_VALUES = K8S / "chart-values.yaml"  # what `make k8s` renders the chart with

# Every way the manifests are rendered; each is validated and checked.
RENDERINGS = [
    "chart-defaults",
    *(f"chart-{path.name.removesuffix('-values.yaml')}" for path in CI_VALUES),
    "k8s",
    "k8s+hpa-in-flight",
]
# Prometheus Operator objects: custom resources, which kubernetes-validate has no schemas for.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
WORKLOAD_KINDS = ("Deployment", "Pod")

Obj = dict[str, Any]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str) -> Obj:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def is_helm_test(obj: Obj) -> bool:
    return "helm.sh/hook" in obj["metadata"].get("annotations", {})


def workload(objects: list[Obj]) -> Obj:
    """The service's Deployment."""
    return one(objects, "Deployment")


def pod_template(obj: Obj) -> Obj:
    return obj if obj["kind"] == "Pod" else obj["spec"]["template"]


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(spec: Obj, name: str) -> Obj:
    (found,) = [c for c in all_containers(spec) if c["name"] == name]
    return found


def selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def configmap_data(objects: list[Obj], name: str) -> dict[str, str]:
    (found,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == name]
    return dict(found["data"])


def container_env(objects: list[Obj], spec: Obj, name: str) -> dict[str, str]:
    """The literal environment a container starts with: its ConfigMaps' data, then its own `env` values."""
    env: dict[str, str] = {}
    target = container(spec, name)
    for source in target.get("envFrom", []):
        if "configMapRef" in source and not source["configMapRef"].get("optional"):
            env.update(configmap_data(objects, source["configMapRef"]["name"]))
    for variable in target.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
    return env


_SUFFIXES = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>[eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$"
)


def quantity(value: str | int | float) -> Decimal:
    """A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity's grammar) as a number."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(_SUFFIXES[suffix])


def scaled(value: int | str, total: int, round_up: bool) -> int:
    """An int-or-percent field resolved against `total`, as the controllers do."""
    if isinstance(value, int):
        return value
    percent = Decimal(value.rstrip("%")) * total / 100
    return int(percent.to_integral_value(rounding="ROUND_CEILING" if round_up else "ROUND_FLOOR"))
