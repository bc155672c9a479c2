"""k8s/ is generated from the chart (`make k8s`: ci/render-k8s.py) and checked in. Here: the checked-in files are
what the generator writes now (a chart change without `make k8s` fails), and `kubectl kustomize k8s/` yields
the chart's objects rendered as release "rag" with k8s/chart-values.yaml, object for object, without only
what Helm adds (its labels, the namespace, the checksum annotation)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helm_tool import Helm
from kustomize import render as kustomize
from manifests import K8S, K8S_VALUES, REPO, Obj, workload

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
    with generated ConfigMap names back to their own."""
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


def test_k8s_is_what_the_generator_writes_now(helm: Helm, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "ci" / "render-k8s.py"),
            "--helm",
            str(helm.binary),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        env=helm.env,
        timeout=180,
    )
    written = {str(p.relative_to(tmp_path)): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    checked_in = {
        str(p.relative_to(K8S)): p.read_text()
        for p in K8S.rglob("*")
        if p.is_file() and p.name != "chart-values.yaml" and "components" not in p.relative_to(K8S).parts
    }
    stale = sorted(name for name in written if written[name] != checked_in.get(name))
    assert (stale, sorted(set(checked_in) - set(written))) == ([], []), "run `make k8s` and commit k8s/"


def test_the_credentials_secret_is_optional_in_k8s_only(helm: Helm) -> None:
    """k8s/ serves IRSA and a Secret alike, so the Secret may be absent; the chart's default fails on a missing
    one (artifacts.credentialsSecretOptional)."""
    k8s = workload(kustomize(K8S).objects)["spec"]["template"]["spec"]
    named = helm.template(sets=("artifacts.credentialsSecret=creds",))
    assert [ref.get("optional") for ref in secret_refs(k8s)] == [True, True]
    assert [ref.get("optional") for ref in secret_refs(workload(named)["spec"]["template"]["spec"])] == [
        None,
        None,
    ]


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
