"""The Helm chart with Helm 3.10: lint, render, toggles, the values schema, and the `helm test` pod."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_tool import Helm
from manifests import CHART, CI_VALUES, Obj, is_helm_test, of_kind, one, pod_template, workload

ALL_ON = CHART / "ci" / "all-on-values.yaml"
BUILT_IN = {"global"}  # Helm's own key, accepted by every chart


def kinds(objects: list[Obj]) -> set[str]:
    return {o["kind"] for o in objects}


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_lint_strict_passes(helm: Helm, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    result = helm.run(*args)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_every_toggle_on_renders_every_object(helm: Helm) -> None:
    defaults = helm.template()
    all_on = helm.template(ALL_ON)
    always = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler"}
    assert kinds(defaults) == always | {"PodDisruptionBudget", "Pod"}
    assert kinds(all_on) == kinds(defaults) | {"NetworkPolicy", "ServiceMonitor", "PrometheusRule"}
    assert len(of_kind(all_on, "ConfigMap")) == 2  # settings + the Grafana dashboard
    hpa = one(all_on, "HorizontalPodAutoscaler")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Pods"]
    assert hpa["spec"]["metrics"][1]["pods"]["metric"]["name"] == "rag_in_flight_requests"
    # and every toggle off: the objects go, the Deployment keeps a fixed count
    off = helm.template(
        sets=(
            "autoscaling.enabled=false",
            "podDisruptionBudget.enabled=false",
            "serviceAccount.create=false",
            "tests.enabled=false",
            "topologySpread.enabled=false",
        )
    )
    assert kinds(off) == {"ConfigMap", "Service", "Deployment"}
    deployment = workload(off)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]
    assert "replicas" not in workload(all_on)["spec"]  # the HPA owns the count


def test_chart_targets_helm_3_10_and_writes_autoscaling_v2_itself(helm: Helm) -> None:
    assert helm.run("version", "--template", "{{.Version}}").stdout.startswith("v3.10.")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    templates = {p.name: p.read_text() for p in (CHART / "templates").rglob("*") if p.is_file()}
    # No Capabilities lookups: `helm template` without a cluster renders what an install does.
    assert not [name for name, text in templates.items() if ".Capabilities" in text]
    assert "apiVersion: autoscaling/v2\n" in templates["hpa.yaml"]
    assert "apiVersion: policy/v1\n" in templates["pdb.yaml"]
    # The oldest Kubernetes the chart allows has both APIs (autoscaling/v2 is GA since 1.23).
    assert chart["kubeVersion"] == ">=1.23.0-0"
    failed = helm.run("template", "rag", str(CHART), "--kube-version", "1.22.0", check=False)
    assert failed.returncode != 0 and "kubeVersion" in failed.stderr


def test_image_tag_defaults_to_app_version(helm: Helm) -> None:
    import rag

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == rag.__version__

    def images(objects: list[Obj]) -> set[str]:
        return {
            c["image"]
            for o in objects
            if o["kind"] in ("Deployment", "Pod")
            for c in [
                *pod_template(o)["spec"].get("initContainers", []),
                *pod_template(o)["spec"]["containers"],
            ]
        }

    assert images(helm.template()) == {f"localhost/rag:{rag.__version__}"}
    assert images(helm.template(sets=("image.tag=2026.11.21",))) == {"localhost/rag:2026.11.21"}
    digest = "sha256:" + "ab" * 32
    assert images(helm.template(sets=("image.tag=x", f"image.digest={digest}"))) == {
        f"localhost/rag@{digest}"
    }


def checksum(objects: list[Obj]) -> str:
    return str(workload(objects)["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_config_change_rolls_the_pods_and_nothing_else_does(helm: Helm) -> None:
    base = checksum(helm.template())
    assert len(base) == 64
    changed = {
        "a setting": helm.template(strings=("server.settings.RAG_CACHE_SIZE=2048",)),
        "the channel": helm.template(sets=("artifacts.channel=canary",)),
        "the drain time": helm.template(sets=("server.drainSeconds=8",)),
    }
    assert {what: checksum(objects) != base for what, objects in changed.items()} == dict.fromkeys(
        changed, True
    )
    for unrelated in ("replicaCount=5", "autoscaling.maxReplicas=4", "service.port=80"):
        assert checksum(helm.template(sets=(unrelated,))) == base, unrelated
    # the checksum covers the ConfigMap the pods read
    configmap = one(helm.template(strings=("server.settings.RAG_CACHE_SIZE=2048",)), "ConfigMap")
    assert configmap["data"]["RAG_CACHE_SIZE"] == "2048"


def test_extra_env_and_volumes_reach_the_server(helm: Helm) -> None:
    spec = workload(helm.template(ALL_ON))["spec"]["template"]["spec"]
    server = spec["containers"][0]
    assert {"name": "RAG_MAX_CONCURRENCY", "value": "16"} in server["env"]
    assert {"configMapRef": {"name": "rag-extra-settings", "optional": True}} in server["envFrom"]
    assert {"secretRef": {"name": "rag-keys"}} in server["envFrom"]
    assert {"name": "models", "emptyDir": {}} in spec["volumes"]
    assert {"name": "models", "mountPath": "/models-extra", "readOnly": True} in server["volumeMounts"]
    # the escape hatches do not touch the init container
    assert "env" not in spec["initContainers"][0]


def test_a_milvus_backend_reaches_the_server_and_needs_its_uri(helm: Helm) -> None:
    defaults = one(helm.template(), "ConfigMap")["data"]
    assert defaults["RAG_RETRIEVAL_BACKEND"] == "bundle" and not any(
        k.startswith("RAG_MILVUS") for k in defaults
    )
    objects = helm.template(CHART / "ci" / "milvus-values.yaml")
    data = one(objects, "ConfigMap")["data"]
    assert {k: v for k, v in data.items() if k.startswith(("RAG_MILVUS", "RAG_RETRIEVAL"))} == {
        "RAG_RETRIEVAL_BACKEND": "milvus",
        "RAG_MILVUS_URI": "http://milvus.milvus.svc:19530",
        "RAG_MILVUS_PREFIX": "rag",
        "RAG_MILVUS_TIMEOUT_SECONDS": "2",
        "RAG_MILVUS_BM25": "true",
    }
    spec = workload(objects)["spec"]["template"]["spec"]
    assert {"secretRef": {"name": "rag-milvus"}} in spec["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "rag-milvus"}} not in spec["initContainers"][0]["envFrom"]  # S3 only
    assert spec["initContainers"][0]["args"][-1] == "--without-indexes"  # the engine holds them
    assert (
        "--without-indexes"
        not in workload(helm.template())["spec"]["template"]["spec"]["initContainers"][0]["args"]
    )
    missing = helm.run("template", "rag", str(CHART), "--set", "retrieval.backend=milvus", check=False)
    assert missing.returncode != 0
    assert "retrieval.milvus.uri is required with retrieval.backend=milvus" in missing.stderr


BAD_VALUES = {
    "unknown retrieval backend": ({"retrieval": {"backend": "elastic"}}, "retrieval.backend"),
    "a Milvus setting through settings": (
        {"server": {"settings": {"RAG_MILVUS_URI": "http://m:19530"}}},
        "server.settings",
    ),
    "unknown top-level key": ({"replicas": 3}, "Additional property replicas is not allowed"),
    "unknown nested key": ({"server": {"prot": 8000}}, "Additional property prot is not allowed"),
    "pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy"),
    "not an S3 URI": ({"artifacts": {"uri": "https://bucket/prefix"}}, "artifacts.uri"),
    "no replicas": ({"replicaCount": 0}, "replicaCount"),
    "a chart-managed setting": ({"server": {"settings": {"RAG_BIND": "0.0.0.0:9"}}}, "server.settings"),
    "a non-RAG setting": ({"server": {"settings": {"PATH": "/x"}}}, "server.settings"),
    "a setting that is not a string": ({"server": {"settings": {"RAG_CACHE_SIZE": 5}}}, "RAG_CACHE_SIZE"),
    "bad quantity": ({"resources": {"limits": {"memory": "2 GB"}}}, "resources.limits.memory"),
    "bad probe": ({"probes": {"startup": {"periodSeconds": 0}}}, "probes.startup.periodSeconds"),
    "CPU target above 100%": ({"autoscaling": {"targetCPUUtilizationPercentage": 150}}, "autoscaling"),
}


@pytest.mark.parametrize("case", BAD_VALUES, ids=list(BAD_VALUES))
def test_values_schema_rejects_bad_values(helm: Helm, tmp_path: Path, case: str) -> None:
    values, message = BAD_VALUES[case]
    path = values_file(tmp_path, values)
    for command in (["lint", "--strict", str(CHART)], ["template", "rag", str(CHART)]):
        result = helm.run(*command, "--values", str(path), check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"helm {command[0]} accepted {values}"
        assert "values don't meet the specifications of the schema" in output, output
        assert message in output, output


def walk_schema(schema: dict[str, Any], node: dict[str, Any], path: str) -> list[str]:
    """Fields without a description, and objects that accept keys nobody declared."""
    if "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    problems = [] if node.get("description") else [f"{path}: no description"]
    for name, child in node.get("properties", {}).items():
        problems += walk_schema(schema, child, f"{path}.{name}")
    if "properties" in node and node.get("additionalProperties") is not False:
        problems.append(f"{path}: accepts undeclared keys")
    return problems


def test_schema_describes_every_field_and_declares_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert walk_schema(schema, {**schema, "description": "root"}, "") == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(schema["properties"]) - BUILT_IN == set(values)


def test_every_value_has_a_comment() -> None:
    """Each leaf value of values.yaml has a comment right above it, or sits under a key that has one."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys = [
        (len(match["indent"]), match["key"], number)
        for number, line in enumerate(lines)
        if (match := re.match(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):", line))
    ]
    commented = {number for _, _, number in keys if number and lines[number - 1].lstrip().startswith("#")}
    uncommented = []
    ancestors: list[tuple[int, int]] = []  # (indent, line number) of the keys enclosing the current one
    for index, (indent, key, number) in enumerate(keys):
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        is_leaf = index + 1 == len(keys) or keys[index + 1][0] <= indent
        if is_leaf and not ({number, *(n for _, n in ancestors)} & commented):
            uncommented.append(key)
        ancestors.append((indent, number))
    assert len(keys) > 80 and uncommented == []


def test_helm_test_pod_checks_ready_and_answer_against_the_service(
    helm: Helm, live_service: str, tmp_path: Path
) -> None:
    (pod,) = [o for o in helm.template() if is_helm_test(o)]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (test,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in test["env"] if "value" in e}
    assert env["RAG_TEST_URL"] == "http://rag.default.svc:8000"  # the Service, by its cluster DNS name
    command = test["command"]
    assert command[:2] == ["python", "-c"]

    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", command[2]],
            env={"RAG_TEST_URL": url, "RAG_TEST_QUESTION": env["RAG_TEST_QUESTION"]},
            capture_output=True,
            text=True,
            timeout=120,
        )

    passed = run(live_service)  # the same script, pointed at the real app on loopback
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["abstained"] is False
    failed = run(f"{live_service}/no-such-prefix")  # a 404 from /ready must fail the test pod
    assert failed.returncode != 0 and "HTTP Error 404" in failed.stderr


def test_the_latency_shaped_pod_in_deploy_md_renders_as_it_says(helm: Helm, tmp_path: Path) -> None:
    """docs/DEPLOY.md's values for one worker on 2 threads: one worker, 2 ORT threads, one answer computed at
    a time, one request in flight."""
    text = (CHART.parents[1] / "docs" / "DEPLOY.md").read_text()
    section = text[text.index("To run it, set the worker count and the threads together") :]
    snippet = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    snippet["autoscaling"]["inFlight"]["enabled"] = True
    objects = helm.template(values_file(tmp_path, snippet))
    config = one(objects, "ConfigMap")["data"]
    assert (config["RAG_WORKERS"], config["RAG_THREADS"], config["RAG_INFERENCE_THREADS"]) == ("1", "2", "1")
    metrics = one(objects, "HorizontalPodAutoscaler")["spec"]["metrics"]
    pods = [m["pods"] for m in metrics if m["type"] == "Pods"]
    assert [p["target"]["averageValue"] for p in pods] == ["1"]
