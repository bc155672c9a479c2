"""k8s/ and the chart agree: k8s/ is the chart rendered as release "rag" with tests/deploy/k8s-values.yaml,
object for object — probes, ports, env, volumes, security, sizing, autoscaling, alerts. A change to one
that is not made to the other fails here."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from helm_tool import Helm
from kustomize import render as kustomize
from manifests import K8S, K8S_VALUES, Obj, workload

Key = tuple[str, str]


def secret_refs(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        source["secretRef"]
        for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
        for source in c.get("envFrom", [])
        if "secretRef" in source
    ]


def comparable(objects: list[Obj], generated: dict[str, str]) -> dict[Key, Obj]:
    """By (kind, name), without what only Helm adds (its labels, the checksum annotation, the namespace),
    with generated ConfigMap names back to their own, and without the Secret's `optional` flag."""
    out: dict[Key, Obj] = {}
    for original in objects:
        obj = copy.deepcopy(original)
        metadata = obj["metadata"]
        metadata["name"] = generated.get(metadata["name"], metadata["name"])
        metadata.pop("namespace", None)
        metadata.pop("labels", None)
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            template["metadata"].pop("annotations", None)
            for c in [*template["spec"]["initContainers"], *template["spec"]["containers"]]:
                for source in c.get("envFrom", []):
                    ref = source.get("configMapRef")
                    if ref:
                        ref["name"] = generated.get(ref["name"], ref["name"])
            for ref in secret_refs(template["spec"]):
                ref.pop("optional", None)
        out[(obj["kind"], metadata["name"])] = obj
    return out


@pytest.fixture(scope="module")
def chart(helm: Helm) -> dict[Key, Obj]:
    return comparable(helm.template(K8S_VALUES), {})


@pytest.fixture(scope="module")
def base() -> dict[Key, Obj]:
    rendered = kustomize(K8S)
    return comparable(rendered.objects, rendered.generated)


def test_same_objects(chart: dict[Key, Obj], base: dict[Key, Obj]) -> None:
    assert sorted(base) == sorted(chart)
    assert len(base) == 9


@pytest.mark.parametrize(
    "key",
    [
        ("Deployment", "rag"),
        ("ConfigMap", "rag"),
        ("Service", "rag"),
        ("ServiceAccount", "rag"),
        ("HorizontalPodAutoscaler", "rag"),
        ("PodDisruptionBudget", "rag"),
        ("NetworkPolicy", "rag"),
        ("ServiceMonitor", "rag"),
        ("PrometheusRule", "rag"),
    ],
    ids=lambda key: key[0],
)
def test_objects_agree(chart: dict[Key, Obj], base: dict[Key, Obj], key: Key) -> None:
    assert base[key] == chart[key]


def test_essentials_agree_field_by_field(chart: dict[Key, Obj], base: dict[Key, Obj]) -> None:
    # The whole-object comparison above covers these; spelled out so a failure names what drifted.
    def essentials(objects: dict[Key, Obj]) -> dict[str, Any]:
        spec = objects[("Deployment", "rag")]["spec"]["template"]["spec"]
        server, init = spec["containers"][0], spec["initContainers"][0]
        return {
            "probes": {k: server[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")},
            "ports": server["ports"],
            "service ports": objects[("Service", "rag")]["spec"]["ports"],
            "env": objects[("ConfigMap", "rag")]["data"],
            "envFrom": [server["envFrom"], init["envFrom"]],
            "volumes": spec["volumes"],
            "mounts": [server["volumeMounts"], init["volumeMounts"]],
            "init command": [init["command"], init["args"]],
            "shutdown": [spec["terminationGracePeriodSeconds"], server["lifecycle"]],
            "resources": [server["resources"], init["resources"]],
            "security": [spec["securityContext"], server["securityContext"], init["securityContext"]],
        }

    chart_essentials, base_essentials = essentials(chart), essentials(base)
    assert {k: v for k, v in base_essentials.items() if v != chart_essentials[k]} == {}


def test_the_one_allowed_difference_is_an_optional_credentials_secret(helm: Helm) -> None:
    k8s = workload(kustomize(K8S).objects)["spec"]["template"]["spec"]
    chart = workload(helm.template(K8S_VALUES))["spec"]["template"]["spec"]
    # k8s/ serves both IRSA and a Secret, so the Secret may be absent; the chart names it only when given.
    assert [ref.get("optional") for ref in secret_refs(k8s)] == [True, True]
    assert [ref.get("optional") for ref in secret_refs(chart)] == [None, None]


def test_labels_are_the_charts_without_helms_own(helm: Helm) -> None:
    rendered = kustomize(K8S)
    chart = {(o["kind"], o["metadata"]["name"]): o["metadata"]["labels"] for o in helm.template(K8S_VALUES)}
    for obj in rendered.objects:
        name = rendered.generated.get(obj["metadata"]["name"], obj["metadata"]["name"])
        labels = obj["metadata"]["labels"]
        assert labels == {"app.kubernetes.io/name": "rag", "app.kubernetes.io/instance": "rag"}
        assert labels.items() <= chart[(obj["kind"], name)].items()


def test_in_flight_component_matches_the_charts_toggle(helm: Helm) -> None:
    with_component = kustomize(K8S, ("components/hpa-in-flight",))
    chart = helm.template(K8S_VALUES, sets=("autoscaling.inFlight.enabled=true",))

    def hpa(objects: list[Obj]) -> Obj:
        (found,) = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
        return dict(found["spec"])

    assert hpa(with_component.objects) == hpa(chart)
    assert hpa(with_component.objects) != hpa(kustomize(K8S).objects)
