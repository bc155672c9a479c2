"""Every rendering of the manifests (the chart with each values file, and k8s/): schema-valid for Kubernetes
1.29 and 1.33, plus what schemas cannot see — selectors, probes against the app's routes, quantities, the
shared bundle volume, disruption room, shutdown timing and the restricted Pod Security Standard."""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from manifests import (
    CUSTOM_KINDS,
    RENDERINGS,
    REPO,
    Obj,
    all_containers,
    container_env,
    is_helm_test,
    of_kind,
    one,
    pod_template,
    quantity,
    scaled,
    selects,
    workload,
)
from rag_testkit.launch import user_environment

KUBE_VERSIONS = ("1.29", "1.33")
GUNICORN_CONF = REPO / "services" / "rag" / "api" / "gunicorn_conf.py"
# docs/BENCHMARKS.md, "Cold start": container start → /ready 200 with the production model pair, the worst
# of three runs; and the service's PSS with 2 workers and a bge-base-size reranker, preloaded.
MEASURED_START_SECONDS = 5.16
MEASURED_PSS_BYTES = 774 * 10**6
# Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
RESTRICTED_VOLUMES |= {"projected", "secret"}

pytestmark = pytest.mark.parametrize("name", RENDERINGS)


def server_spec(objects: list[Obj]) -> Obj:
    return dict(workload(objects)["spec"]["template"]["spec"])


def server(objects: list[Obj]) -> Obj:
    return dict(server_spec(objects)["containers"][0])


def pods(objects: list[Obj]) -> list[Obj]:
    return [pod_template(o) for o in objects if o["kind"] in ("Deployment", "Pod")]


def bind_port(env: dict[str, str]) -> int:
    return int(env["RAG_BIND"].rsplit(":", 1)[1])


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_core_objects_validate_strictly(renderings: dict[str, list[Obj]], name: str, kube: str) -> None:
    validated = []
    for obj in renderings[name]:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue  # see test_custom_resources_are_checked_apart
        # validate() falls back to an older schema when a version is missing: insist on this one.
        assert kubernetes_validate.validate(obj, f"{kube}.0", strict=True) == kube
        validated.append(obj["kind"])
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= set(validated)


def test_strict_validation_catches_an_unknown_field(renderings: dict[str, list[Obj]], name: str) -> None:
    broken = copy.deepcopy(workload(renderings[name]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {"periodSeconds": 10}
    for kube in KUBE_VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError, match="livenessprobe"):
            kubernetes_validate.validate(broken, f"{kube}.0", strict=True)


def test_custom_resources_are_checked_apart(
    renderings: dict[str, list[Obj]], name: str, app_routes: dict[str, set[str]]
) -> None:
    """ServiceMonitor and PrometheusRule are Prometheus Operator CRDs: kubernetes-validate ships no schema
    for them (asserted, so this test notices the day it does). Their structure is checked here, and the
    rules themselves by promtool (test_alerts_dashboard.py)."""
    objects = renderings[name]
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, "1.33.0", strict=True)
    for monitor in of_kind(objects, "ServiceMonitor"):
        service = one(objects, "Service")
        assert set(monitor["spec"]) == {"selector", "endpoints"}
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        for endpoint in monitor["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
            assert "GET" in app_routes[endpoint["path"]]
            timeout, interval = (endpoint[key] for key in ("scrapeTimeout", "interval"))
            assert re.fullmatch(r"\d+s", timeout) and re.fullmatch(r"\d+s", interval)
            assert int(timeout[:-1]) <= int(interval[:-1])
    for rule in of_kind(objects, "PrometheusRule"):
        (group,) = rule["spec"]["groups"]
        for alert in group["rules"]:
            assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}, alert.get("alert")
            assert alert["labels"]["severity"] in ("warning", "critical")
            assert set(alert["annotations"]) == {"summary", "description"}


def test_selectors_match_the_pod_labels(renderings: dict[str, list[Obj]], name: str) -> None:
    objects = renderings[name]
    deployment = workload(objects)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selects(selector, labels)
    service = one(objects, "Service")
    assert selects(service["spec"]["selector"], labels)
    assert service["spec"]["selector"] == selector
    ports = {p["name"]: p["containerPort"] for p in server(objects)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    assert selects(one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    for policy in of_kind(objects, "NetworkPolicy"):
        assert selects(policy["spec"]["podSelector"]["matchLabels"], labels)
        assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} <= set(ports)
    for constraint in server_spec(objects).get("topologySpreadConstraints", []):
        assert selects(constraint["labelSelector"]["matchLabels"], labels)
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] == deployment["metadata"]["name"]
    # the helm test pod must not look like a server pod: no traffic from the Service, not counted by the PDB
    for pod in filter(is_helm_test, objects):
        assert not selects(selector, pod["metadata"]["labels"])


def test_probes_hit_routes_the_app_serves_on_the_port_it_binds(
    renderings: dict[str, list[Obj]], name: str, app_routes: dict[str, set[str]]
) -> None:
    objects = renderings[name]
    rag = server(objects)
    env = container_env(objects, server_spec(objects), rag["name"])
    ports = {p["name"]: p["containerPort"] for p in rag["ports"]}
    assert ports == {"http": bind_port(env)}
    probes = {kind: rag[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startup": "/ready",  # loaded and warm
        "readiness": "/ready",  # and not draining or saturated
        "liveness": "/health",  # the process answers; no model call
    }
    for probe in probes.values():
        assert "GET" in app_routes[probe["path"]]
        assert probe["port"] in ports
    for pod in filter(is_helm_test, objects):
        url = urlsplit(
            next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "RAG_TEST_URL")
        )
        service = one(objects, "Service")
        assert url.hostname is not None and url.hostname.split(".")[0] == service["metadata"]["name"]
        assert url.port == service["spec"]["ports"][0]["port"]


def test_probe_timings_follow_the_measured_start(renderings: dict[str, list[Obj]], name: str) -> None:
    objects = renderings[name]
    rag = server(objects)
    env = container_env(objects, server_spec(objects), rag["name"])

    def window(kind: str) -> int:
        probe = rag[f"{kind}Probe"]
        return int(probe["periodSeconds"] * probe["failureThreshold"])

    # generous for model load: ≥ 10× the measured start (throttled CPU, cold cache, a larger bundle)
    assert window("startup") >= 10 * MEASURED_START_SECONDS
    # a draining pod (SIGTERM: /ready 503 while serving) is marked unready before it stops serving
    assert window("readiness") <= float(env["RAG_DRAIN_SECONDS"])
    # conservative: a busy pod (a 2 s rerank on every worker) is never restarted by liveness
    assert window("liveness") >= 30 and rag["livenessProbe"]["timeoutSeconds"] >= 2
    # a slow start is not a failed rollout: the pull's whole deadline plus the startup budget fit
    pull_deadline = float(
        container_env(objects, server_spec(objects), "pull-bundle")["RAG_ARTIFACTS_TIMEOUT_SECONDS"]
    )
    assert workload(objects)["spec"]["progressDeadlineSeconds"] > pull_deadline + window("startup")


def test_resource_quantities_parse_and_fit(renderings: dict[str, list[Obj]], name: str) -> None:
    objects = renderings[name]
    for pod in pods(objects):
        for c in all_containers(pod["spec"]):
            resources = c["resources"]
            assert set(resources) == {"requests", "limits"}, c["name"]
            for resource in ("cpu", "memory"):
                request, limit = (quantity(resources[kind][resource]) for kind in ("requests", "limits"))
                assert 0 < request <= limit, (c["name"], resource)
    for volume in server_spec(objects)["volumes"]:
        if "sizeLimit" in volume.get("emptyDir", {}):
            assert quantity(volume["emptyDir"]["sizeLimit"]) > 0
    limits = server(objects)["resources"]["limits"]
    # the measured footprint fits with room for a hot reload's second bundle
    assert quantity(limits["memory"]) >= 2 * MEASURED_PSS_BYTES
    # workers are counted from the CPU limit (RAG_WORKERS=0): it must be a whole number of CPUs
    assert quantity(limits["cpu"]) == int(quantity(limits["cpu"])) >= 1


def expand(argument: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        assert match[1] in env, f"$({match[1]}) is not in the container's environment"
        return env[match[1]]

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value, argument)


def mount_holding(c: Obj, path: str) -> Obj:
    (mount,) = [
        m for m in c["volumeMounts"] if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")
    ]
    return dict(mount)


def test_init_container_fills_the_volume_the_server_reads(
    renderings: dict[str, list[Obj]], name: str
) -> None:
    from rag.cli import build_parser

    objects = renderings[name]
    spec = server_spec(objects)
    (init,) = spec["initContainers"]
    init_env = container_env(objects, spec, init["name"])
    server_env = container_env(objects, spec, spec["containers"][0]["name"])
    assert init["image"] == spec["containers"][0]["image"]
    # the real CLI accepts the command line, once Kubernetes has expanded $(VAR)
    argv = [expand(a, init_env) for a in init["args"]]
    assert init["command"] == ["rag"]
    args = build_parser().parse_args(argv)
    assert (args.command, args.artifacts_command) == ("artifacts", "pull"), shlex.join(argv)
    assert args.channel == server_env["RAG_RELOAD_CHANNEL"] and args.version is None
    assert init_env["RAG_ARTIFACTS_URI"].startswith("s3://")
    # the bundle lands where the server looks for it, on one emptyDir mounted at the same place in both
    assert args.dest == server_env["RAG_BUNDLE_DIR"]
    written, read = mount_holding(init, args.dest), mount_holding(spec["containers"][0], args.dest)
    assert written["name"] == read["name"] and written["mountPath"] == read["mountPath"]
    assert not written.get("readOnly") and not read.get("readOnly")  # hot reload writes beside the bundle
    (volume,) = [v for v in spec["volumes"] if v["name"] == written["name"]]
    assert "emptyDir" in volume
    # both containers reach the store with the same credentials
    secrets = [
        [s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s]
        for c in (init, spec["containers"][0])
    ]
    assert set(secrets[0]) <= set(secrets[1])


def test_pdb_leaves_room_for_a_disruption_and_the_rollout_moves(
    renderings: dict[str, list[Obj]], name: str
) -> None:
    objects = renderings[name]
    deployment = workload(objects)
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    replicas = hpas[0]["spec"]["minReplicas"] if hpas else deployment["spec"]["replicas"]
    budget = one(objects, "PodDisruptionBudget")["spec"]
    if "minAvailable" in budget:
        allowed = replicas - scaled(budget["minAvailable"], replicas, round_up=True)
    else:
        allowed = scaled(budget["maxUnavailable"], replicas, round_up=True)
    assert allowed >= 1, "a node drain would block forever at the minimum replica count"
    assert replicas - allowed >= 1, "a disruption could take every pod"
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    surge = scaled(rolling["maxSurge"], replicas, round_up=True)
    unavailable = scaled(rolling["maxUnavailable"], replicas, round_up=False)
    assert surge + unavailable >= 1 and unavailable == 0  # never below the wanted count while rolling


def gunicorn_config(env: dict[str, str], cpus: int, tmp_path: Path) -> dict[str, Any]:
    """services/rag/api/gunicorn_conf.py evaluated in a fresh interpreter with the container's environment
    and CPU limit (its /tmp is this test's: the config makes its metrics folder there)."""
    program = (
        "import json, runpy, rag.config\n"
        f"rag.config.available_cpus = lambda *_: {cpus}\n"
        f"c = runpy.run_path({str(GUNICORN_CONF)!r})\n"
        "print(json.dumps({k: c[k] for k in ('workers', 'graceful_timeout', 'bind', '_threads')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={**user_environment(), **env, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"gunicorn_conf refuses this pod: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def test_shutdown_outlasts_the_preStop_pause_and_gunicorns_graceful_timeout(
    renderings: dict[str, list[Obj]], name: str, tmp_path: Path
) -> None:
    objects = renderings[name]
    rag = server(objects)
    env = container_env(objects, server_spec(objects), rag["name"])
    cpus = math.ceil(quantity(rag["resources"]["limits"]["cpu"]))
    config = gunicorn_config(env, cpus, tmp_path)
    (sleep, seconds) = rag["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    grace = server_spec(objects)["terminationGracePeriodSeconds"]
    assert grace > int(seconds) + config["graceful_timeout"]
    # and the workers fit the CPU limit, one single-threaded worker per CPU unless set
    assert config["workers"] * config["_threads"] <= cpus
    assert config["workers"] == (int(env["RAG_WORKERS"]) or cpus)
    assert config["bind"] == f"0.0.0.0:{bind_port(env)}"


def dockerfile_user() -> tuple[int, int]:
    (user,) = re.findall(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    return int(user[0]), int(user[1])


def test_pods_meet_the_restricted_pod_security_standard(renderings: dict[str, list[Obj]], name: str) -> None:
    for pod in pods(renderings[name]):
        spec = pod["spec"]
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == dockerfile_user()
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
        assert spec["automountServiceAccountToken"] is False
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
        for c in all_containers(spec):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged")
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
        if not is_helm_test(pod):
            # a read-only root: whatever the service writes goes to /tmp, an emptyDir
            for c in all_containers(spec):
                tmp = mount_holding(c, "/tmp")
                assert any(v["name"] == tmp["name"] and "emptyDir" in v for v in spec["volumes"])


def test_network_policy_lets_the_pull_reach_its_store(renderings: dict[str, list[Obj]], name: str) -> None:
    objects = renderings[name]
    for policy in of_kind(objects, "NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        allowed = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert {("UDP", 53), ("TCP", 53)} <= allowed
        env = container_env(objects, server_spec(objects), "pull-bundle")
        endpoint = urlsplit(env.get("RAG_S3_ENDPOINT_URL", "https://s3.amazonaws.com"))
        port = endpoint.port or {"https": 443, "http": 80}[endpoint.scheme]
        assert ("TCP", port) in allowed
        # IRSA's web-identity exchange goes to STS over HTTPS
        service_account = [o for o in objects if o["kind"] == "ServiceAccount"]
        if any(
            "eks.amazonaws.com/role-arn" in sa["metadata"].get("annotations", {}) for sa in service_account
        ):
            assert ("TCP", 443) in allowed
