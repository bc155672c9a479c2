"""podman as this machine runs it, shared by the image test and the cold-start benchmark.

Podman here needs runc, host networking, raised ulimits and no systemd for health checks: that lives in
tests/image/containers.conf, passed to every call. Images are built with `--format docker` (keeps HEALTHCHECK),
from a local base image made by ci/build-base-image.sh (no registry here), with this machine's CA bundle as
the `cacert` build secret (its HTTPS goes through that CA, and pip in the build needs it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .samples import ROOT
from .tools import free_port, require_packages, wait_for

BASE_IMAGE = "localhost/pybase:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINERS_CONF = ROOT / "tests" / "image" / "containers.conf"
PACKAGES = ("podman", "buildah", "debootstrap", "runc", "netavark", "uidmap")
_SERIAL = itertools.count()
_CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "constraints.txt")
_CI_SCRIPTS = ("lib.sh", "build-index.sh", "publish-index.sh", "index-job.sh")  # the RayJob's entrypoint


def podman(*args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def ensure_base_image(*, rebuild: bool = False) -> str:
    """The local base image, built by ci/build-base-image.sh when missing (or always, with `rebuild`)."""
    require_packages(*PACKAGES)
    if rebuild or podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        done = subprocess.run(
            [str(ROOT / "ci" / "build-base-image.sh")],
            env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "IMAGE": BASE_IMAGE},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"ci/build-base-image.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    return BASE_IMAGE


def image_ids() -> set[str]:
    """Every local image's full id, intermediate ones too (without the `sha256:` that `--no-trunc` adds)."""
    listed = podman("images", "--all", "--quiet", "--no-trunc").stdout.split()
    return {i.removeprefix("sha256:") for i in listed}


def image_id(ref: str) -> str | None:
    done = podman("image", "inspect", ref, "--format", "{{.ID}}", check=False)
    return done.stdout.strip().removeprefix("sha256:") or None


@contextlib.contextmanager
def images_removed_afterwards(base: str = BASE_IMAGE) -> Iterator[None]:
    """Removes on exit every image made inside (cached layers and build stages too) but the `base` image, and
    the base image a rebuild replaced. Each rebuild of a tag leaves the old image and its stages dangling: a
    test run left ~5.7 GB, and 65 GB of them once filled this machine's disk and failed CI's pip install."""
    before, old_base = image_ids(), image_id(base)
    try:
        yield
    finally:
        kept = image_id(base)
        made = (image_ids() - before) | ({old_base} if old_base and old_base != kept else set())
        made.discard(kept or "")
        if made:
            podman("rmi", "--force", "--ignore", *sorted(made), check=False)


def build_image(tag: str, context: Path, *, embedder: Path, reranker: Path, extras: str = "") -> int:
    """Build the Dockerfile with MODEL_SOURCE=local and these ONNX model folders (and RAG_EXTRAS=`extras`, the
    Dockerfile's default unless given); the image size in bytes."""
    for name in _CONTEXT_FILES:
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "services", context / "services", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copytree(ROOT / "image", context / "image")
    (context / "ci").mkdir()
    for script in _CI_SCRIPTS:
        shutil.copy(ROOT / "ci" / script, context / "ci" / script)
    shutil.copytree(embedder, context / "image" / "models" / "embedder")
    shutil.copytree(reranker, context / "image" / "models" / "reranker")
    args = ["build", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag]
    if extras:
        args += ["--build-arg", f"RAG_EXTRAS={extras}"]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=cacert,src={CA_BUNDLE}"]
    podman(*args, str(context))
    return int(podman("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())


# The README's production run: `podman run -d -v data:/artifacts:ro --read-only --tmpfs /tmp -p 8000:8000 IMAGE`.
# Podman here has host networking only, so instead of `-p` the service is told its loopback port (RAG_BIND).
README_SERVER = ("--read-only", "--tmpfs", "/tmp")
TEST_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def env_args(env: Mapping[str, str]) -> list[str]:
    return [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]


def readme_pull(s3_endpoint: str, uri: str, channel: str) -> tuple[list[str], dict[str, str]]:
    """The README's init step (arguments after `--entrypoint rag`, environment) against a loopback S3."""
    args = ["artifacts", "pull", "--uri", uri, "--channel", channel, "--dest", "/artifacts/bundle"]
    return args, {"RAG_S3_ENDPOINT_URL": s3_endpoint, **TEST_AWS}


@contextlib.contextmanager
def pulled_volume(image: str, args: Sequence[str], env: Mapping[str, str]) -> Iterator[str]:
    """A volume at /artifacts holding what the image in init mode (`rag ARGS`, the chart's init container)
    pulled into it."""
    volume = f"rag-artifacts-{os.getpid()}-{next(_SERIAL)}"
    podman("volume", "create", volume)
    try:
        podman(
            "run", "--rm", *README_SERVER, "-v", f"{volume}:/artifacts", *env_args(env),
            "--entrypoint", "rag", image, *args,
        )  # fmt: skip
        yield volume
    finally:
        podman("volume", "rm", "-f", volume, check=False)


@contextlib.contextmanager
def serving_container(
    image: str, volume: str, env: Mapping[str, str] | None = None, timeout: float = 120, interval: float = 0.1
) -> Iterator[tuple[str, str]]:
    """(container name, URL) of the image serving the README's way; `volume` is what `-v` mounts (the
    README's `data:/artifacts:ro`), `env` what a launch path adds (the chart's ConfigMap and env, say). Ready
    when yielded; removed afterwards."""
    name = f"rag-server-{os.getpid()}-{next(_SERIAL)}"
    port = free_port()
    podman(
        "run", "-d", "--name", name, *README_SERVER, "-v", volume,
        *env_args({**(env or {}), "RAG_BIND": f"127.0.0.1:{port}"}), image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(f"{url}/ready", 200, timeout=timeout, interval=interval)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{podman('logs', name, check=False).stderr[-3000:]}") from None
        yield name, url
    finally:
        podman("rm", "-f", "-v", "-i", "-t", "0", name, check=False)  # -v: the image's VOLUME too
