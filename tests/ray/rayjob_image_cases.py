"""The RayJob that helm/rag-index-build renders, run the way KubeRay runs it, on the image's Ray variant.

- A head and a worker container start with KubeRay's command shape (`bash -lc`, `ulimit`, `ray start … --block`)
  and the rendered pods' environment, root filesystem read-only, /tmp and /work as the emptyDirs.
- KubeRay's injected readiness probe (wget on the raylet's and the GCS's health endpoints) passes on the head.
- The job is submitted through the head's dashboard, as KubeRay's submitter does, from the same image.
- The corpus, the eval set and the artifacts live in S3 (moto on loopback).

Then the version the job promoted to staging has the bytes of a local `rag build` of the same corpus with the
same settings (a fresh embedding cache, as ci/build-index.sh gives both), and its embedding ran on both nodes. Run by tests/deploy/test_rayjob.py inside a network namespace of its own (the
containers share its loopback, as the pods of one cluster share a network), with RAG_TEST_RAYJOB naming the
rendered RayJob.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from rag_testkit.containers import TEST_AWS, podman
from rag_testkit.launch import user_environment
from rag_testkit.samples import sentences_corpus, upload_folder, write_eval_set
from rag_testkit.tools import free_port, stop, wait_for

from rag.artifacts import S3Location, S3Store, read_channel
from rag.index import read_manifest

# KubeRay's readiness probe of a head pod (its controller injects it; the image must have bash and wget).
HEAD_PROBE = (
    "wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
    " && wget -T 2 -q -O- http://localhost:8265/api/gcs_healthz | grep success"
)
QUERIES = {"q1": ("Study 3.4 relates the result 58", "doc003.txt"), "q2": ("result 1130", "doc062.txt")}


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    return yaml.safe_load(Path(os.environ["RAG_TEST_RAYJOB"]).read_text())


def pod(job: dict[str, Any], group: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The container of a group ("head" or the worker group) and its rayStartParams."""
    cluster = job["spec"]["rayClusterSpec"]
    spec = cluster["headGroupSpec"] if group == "head" else cluster["workerGroupSpecs"][0]
    return spec["template"]["spec"]["containers"][0], spec["rayStartParams"]


def run_args(name: str, container: dict[str, Any]) -> list[str]:
    """`podman run` as the kubelet would run the pod's container: its env (plus the Secret's, as envFrom gives
    it), a read-only root when its securityContext says so, its emptyDirs as tmpfs, and the /dev/shm KubeRay
    adds to every Ray container (a memory emptyDir sized to the container's memory limit)."""
    args = ["run", "-d", "--name", name, "--entrypoint", "/bin/bash"]
    if container["securityContext"].get("readOnlyRootFilesystem"):
        args.append("--read-only")
    memory = container["resources"]["limits"]["memory"]
    limit = re.fullmatch(r"(\d+)([KMG])i", memory)
    assert limit, f"a memory limit podman's --shm-size cannot say: {memory}"
    args += ["--shm-size", f"{limit[1]}{limit[2].lower()}"]
    for mount in container["volumeMounts"]:
        args += ["--tmpfs", f"{mount['mountPath']}:rw,exec,mode=1777"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    for key, value in {**env, **TEST_AWS}.items():
        args += ["-e", f"{key}={value}"]
    return args


def ray_start(params: dict[str, str], *extra: str) -> str:
    """KubeRay's container command: `ulimit -n 65536; ray start <rayStartParams> --block` under `bash -lc`."""
    flags = " ".join(f"--{key}={value}" for key, value in params.items())
    return f"ulimit -n 65536; ray start {flags} {' '.join(extra)} --node-ip-address=127.0.0.1 --block"


def wait(what: str, check: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


@pytest.fixture()
def cluster(job: dict[str, Any]) -> Iterator[list[str]]:
    """The RayJob's cluster: its head, its readiness probe passing, then one worker of its group."""
    names = [f"rag-rayjob-head-{os.getpid()}", f"rag-rayjob-worker-{os.getpid()}"]
    head, head_params = pod(job, "head")
    worker, worker_params = pod(job, "worker")
    try:
        podman(*run_args(names[0], head), head["image"], "-lc", "--", ray_start(head_params, "--head"))
        probe = lambda: podman("exec", names[0], "bash", "-c", HEAD_PROBE, check=False).returncode == 0  # noqa: E731
        wait("the head's readiness probe", probe)
        # One loopback for both nodes here (a pod has its own): the worker's agent and metrics ports move.
        ports = f"--dashboard-agent-listen-port={free_port()} --metrics-export-port={free_port()}"
        podman(
            *run_args(names[1], worker), worker["image"], "-lc", "--",
            ray_start({**worker_params, "address": "127.0.0.1:6379"}, ports),
        )  # fmt: skip
        nodes = lambda: podman("exec", names[0], "ray", "status", check=False).stdout.count("node_") >= 2  # noqa: E731
        wait("the worker node to join", nodes)
        yield names
    finally:
        for name in names:
            logs = podman("logs", name, check=False)
            sys.stdout.write(f"--- {name}\n{(logs.stdout + logs.stderr)[-2000:]}\n")
            podman("rm", "-f", "-v", name, check=False)


@pytest.fixture()
def s3_endpoint(job: dict[str, Any]) -> Iterator[str]:
    """moto's S3 server where the rendered RayJob says S3 is (artifacts.s3EndpointUrl)."""
    head, _ = pod(job, "head")
    url = next(e["value"] for e in head["env"] if e["name"] == "RAG_S3_ENDPOINT_URL")
    port = url.rsplit(":", 1)[1]
    moto = str(Path(sys.executable).parent / "moto_server")
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(f"{url}/moto-api/", timeout=30, process=process)
        yield url
    finally:
        stop(process)


def test_the_rayjob_builds_gates_and_publishes_the_bytes_of_a_local_build(
    job: dict[str, Any],
    cluster: list[str],
    s3_endpoint: str,
    aws_credentials: None,
    tmp_path: Path,
    real_models: Path,
) -> None:
    s3_server = s3_endpoint
    head, _ = pod(job, "head")
    env = {e["name"]: e["value"] for e in head["env"] if "value" in e}
    corpus_bucket, corpus_prefix = env["CORPUS"].removeprefix("s3://").split("/", 1)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=corpus_bucket)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(
        Bucket=env["RAG_ARTIFACTS_URI"][5:].split("/")[0]
    )
    corpus = sentences_corpus(tmp_path / "corpus")
    upload_folder(s3_server, corpus_bucket, corpus, corpus_prefix)
    eval_set = write_eval_set(tmp_path / "eval", QUERIES)
    upload_folder(s3_server, corpus_bucket, eval_set, env["EVAL_SET"].split("/", 3)[3])

    # KubeRay's submitter: `ray job submit` to the head's dashboard, waiting for the job's end.
    submit = f"ray job submit --address http://127.0.0.1:8265 --submission-id build-1 -- {job['spec']['entrypoint']}"
    done = podman(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp", "--entrypoint", "/bin/bash",
        head["image"], "-lc", "--", submit, check=False, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert "Job 'build-1' succeeded" in done.stdout

    # The embedding actors ran on both nodes (Ray's state API, on the head).
    actors = json.loads(
        podman(
            "exec", cluster[0], "ray", "list", "actors", "--detail", "--format", "json", "--limit", "1000"
        ).stdout
    )
    embedders = {a["node_id"] for a in actors if "_ChunkEmbedder" in a.get("class_name", "")}
    assert len(embedders) == 2, [(a.get("class_name"), a.get("node_id")) for a in actors]

    # What staging now serves is, byte for byte, a local build of the same corpus with the same model.
    store = S3Store(S3Location.parse(env["RAG_ARTIFACTS_URI"]), endpoint_url=s3_server)
    version = read_channel(store, "staging").version
    user = {**user_environment(), **TEST_AWS, "RAG_S3_ENDPOINT_URL": s3_server}
    rag = str(Path(sys.executable).parent / "rag")
    pulled = tmp_path / "pulled"
    subprocess.run(
        [rag, "artifacts", "pull", "--version", version, "--dest", str(pulled)],
        env={**user, "RAG_ARTIFACTS_URI": env["RAG_ARTIFACTS_URI"]}, check=True, timeout=300,
    )  # fmt: skip
    local = tmp_path / "local"
    model = {"RAG_EMBEDDING_MODEL": str(real_models / "bge-small-en"), "RAG_BACKEND": "onnx"}
    subprocess.run(
        # with a fresh embedding cache, as ci/build-index.sh builds on a runner and in the job (a cached build
        # embeds each text alone, so its vectors never depend on their neighbours, unlike an uncached one)
        [
            rag,
            "build",
            str(corpus),
            "--out",
            str(local),
            "--quiet",
            "--cache",
            str(tmp_path / "cache.sqlite"),
        ],
        env={**user, **model},
        check=True,
        timeout=600,
    )
    manifest = read_manifest(local)
    assert read_manifest(pulled).evaluation is not None  # gated on the eval set before it was published

    def digest(bundle: Path) -> dict[str, str]:
        return {name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in manifest.files}

    assert digest(pulled) == digest(local)
