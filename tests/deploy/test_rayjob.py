"""The index build as a KubeRay RayJob: helm/rag-index-build and k8s/ray/rayjob.yaml (rendered from it by
`make k8s`). Its shape, what the chart refuses, and that the entrypoint is the repository's own script, shipped
in the image. tests/ray/rayjob_image_cases.py runs that entrypoint in the image's Ray variant."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_tool import Helm
from manifests import REPO
from rag_testkit.tools import pytest_in_network_namespace

CHART = REPO / "helm" / "rag-index-build"
RAYJOB = REPO / "k8s" / "ray" / "rayjob.yaml"
S3_PORT = 9000
REQUIRED = {
    "corpusUri": "s3://corpus/current",
    "evalSetUri": "s3://corpus/eval-set",
    "artifacts.uri": "s3://artifacts/rag",
}


def template(helm: Helm, *sets: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["template", "nightly", str(CHART), "--kube-version", "1.29.0"]
    return helm.run(*args, *[a for s in sets for a in ("--set", s)], check=check)


def render(helm: Helm, *sets: str) -> Any:
    return yaml.safe_load(template(helm, *sets).stdout)


def refusal(helm: Helm, *sets: str) -> str:
    done = template(helm, *sets, check=False)
    assert done.returncode != 0, "rendered"
    return done.stderr


def full(*sets: str) -> tuple[str, ...]:
    return (*(f"{k}={v}" for k, v in REQUIRED.items()), *sets)


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    return {c["name"]: c for pod in pods for c in pod["spec"]["containers"]}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_the_rayjob_builds_on_its_cluster_then_lets_it_go() -> None:
    job = yaml.safe_load(RAYJOB.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert int(head["rayStartParams"]["num-cpus"]) >= 2  # with 1, Ray Data's tasks and the actors deadlock
    assert spec["rayClusterSpec"]["rayVersion"] == constraint("ray")
    by_name = containers(job)
    assert len({c["image"] for c in by_name.values()}) == 1  # the driver's and the actors' code and models
    head_env = env(by_name["ray-head"])
    assert head_env["RAG_RAY_ADDRESS"] == "auto"
    assert {"CORPUS", "EVAL_SET", "RAG_ARTIFACTS_URI", "CHANNEL", "BUNDLE_OUT", "EMBEDDING_CACHE"} <= set(
        head_env
    )
    assert set(env(by_name["ray-worker"])) == {"HOME"}  # no job settings, no credentials on the workers


def constraint(package: str) -> str:
    match = re.search(rf"^{package}==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned in constraints.txt"
    return match.group(1)


def test_the_entrypoint_is_the_repositorys_script_and_the_image_ships_it() -> None:
    """The job runs ci/index-job.sh from the image: the script, the ones it calls, and the variables they read
    are the repository's, and the Dockerfile copies every one of them to where the entrypoint points."""
    job = yaml.safe_load(RAYJOB.read_text())
    entrypoint = job["spec"]["entrypoint"]
    assert entrypoint == "/opt/rag/ci/index-job.sh"
    copied = re.search(r"^COPY (ci/\S+(?: ci/\S+)*) /opt/rag/ci/$", (REPO / "Dockerfile").read_text(), re.M)
    assert copied, "the Dockerfile copies no ci/ scripts to /opt/rag/ci/"
    shipped = {Path(p).name for p in copied.group(1).split()}
    called = set(re.findall(r'"\$ROOT/ci/([\w-]+\.sh)"', (REPO / "ci" / "index-job.sh").read_text()))
    assert called == {"build-index.sh", "publish-index.sh"}
    assert {"index-job.sh", "lib.sh", *called} <= shipped
    allowed = (REPO / ".dockerignore").read_text().splitlines()
    assert all(f"!ci/{name}" in allowed for name in shipped)  # else the build context drops them
    read = set()
    for name in called:
        read |= set(re.findall(r"^#   ([A-Z][A-Z_]+) ", (REPO / "ci" / name).read_text(), re.M))
    head_env = env(containers(job)["ray-head"])
    assert {k for k in head_env if not k.startswith(("RAG_", "HOME"))} <= read


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_the_chart_refuses_a_build_without_its_inputs(helm: Helm, missing: str) -> None:
    sets = [f"{k}={v}" for k, v in REQUIRED.items() if k != missing]
    assert f"{missing} is required" in refusal(helm, *sets)


@pytest.mark.parametrize(
    ("assignment", "says"),
    [
        (
            "settings.RAG_RAY_ADDRESS=ray://elsewhere:10001",
            "settings.RAG_RAY_ADDRESS: set it through its own value",
        ),
        ("settings.RAG_MILVUS_URI=http://m:19530", "settings.RAG_MILVUS_URI: set it through its own value"),
        ("ray.head.numCpus=1", "ray.head.numCpus: Must be greater than or equal to 2"),
        ("corpusUri=/data/corpus", "corpusUri: Does not match pattern"),
    ],
)
def test_the_chart_refuses_settings_that_would_break_the_build(
    helm: Helm, assignment: str, says: str
) -> None:
    assert says in refusal(helm, *full(assignment))


def test_the_embedding_cache_claim_and_the_milvus_token_reach_the_head_only(helm: Helm) -> None:
    plain = containers(render(helm, *full()))
    assert env(plain["ray-head"])["EMBEDDING_CACHE"] == "/work/embeddings.sqlite"  # a fresh cache per build
    job = render(
        helm,
        *full(
            "embeddingCache.existingClaim=rag-embeddings",
            "milvus.uri=http://milvus:19530",
            "milvus.tokenSecret.name=milvus",
            "settings.RAG_EMBEDDING_MODEL=/models/embedder",
        ),
    )
    by_name = containers(job)
    head, worker = by_name["ray-head"], by_name["ray-worker"]
    assert env(head)["EMBEDDING_CACHE"] == "/cache/embeddings.sqlite"
    assert {"name": "embedding-cache", "mountPath": "/cache"} in head["volumeMounts"]
    head_pod = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "embedding-cache", "persistentVolumeClaim": {"claimName": "rag-embeddings"}} in head_pod[
        "volumes"
    ]
    assert env(head)["RAG_MILVUS_TOKEN"] == {"secretKeyRef": {"name": "milvus", "key": "token"}}
    assert env(head)["RAG_MILVUS_URI"] == "http://milvus:19530"
    assert env(worker) == {"HOME": "/tmp", "RAG_EMBEDDING_MODEL": "/models/embedder"}  # settings, no secret
    assert all(m["mountPath"] != "/cache" for m in worker["volumeMounts"])
    for container in (head, worker):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # Ray's session dir


def test_the_chart_lints(helm: Helm) -> None:
    args = [a for s in full() for a in ("--set", s)]
    done = helm.run("lint", "--strict", str(CHART), *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.image
def test_the_rendered_rayjob_runs_on_the_images_ray_variant(
    helm: Helm, ray_image: str, tmp_path: Path
) -> None:
    """tests/ray/rayjob_image_cases.py runs the chart's RayJob as KubeRay would, in a network namespace. The
    values that differ from the defaults: the image under test, S3 on the namespace's loopback (any port is
    free there), and one worker pod with one CPU (this machine has two)."""
    repository, tag = ray_image.rsplit(":", 1)
    values = (
        f"image.repository={repository}",
        f"image.tag={tag}",
        f"artifacts.s3EndpointUrl=http://127.0.0.1:{S3_PORT}",
    )
    rendered = template(helm, *full(*values, "ray.workers.replicas=1", "ray.workers.numCpus=1")).stdout
    (tmp_path / "rayjob.yaml").write_text(rendered)
    cases = REPO / "tests" / "ray" / "rayjob_image_cases.py"
    env = {"RAG_TEST_RAYJOB": str(tmp_path / "rayjob.yaml")}
    done = pytest_in_network_namespace(cases, cwd=REPO, timeout=1800, env=env)
    sys.stdout.write(done.stdout[-3000:])
