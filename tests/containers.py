"""podman as this machine runs it, shared by the image test and the cold-start benchmark.

Podman here needs runc, host networking, raised ulimits and no systemd for health checks: that lives in
tests/image/containers.conf, passed to every call. Images are built with `--format docker` (keeps HEALTHCHECK),
from a local base image made by ci/build-base-image.sh (no registry here), with this machine's CA bundle as
the `cacert` build secret (its HTTPS goes through that CA, and pip in the build needs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from samples import ROOT
from tools import require_packages

BASE_IMAGE = "localhost/pybase:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINERS_CONF = ROOT / "tests" / "image" / "containers.conf"
PACKAGES = ("podman", "buildah", "debootstrap", "runc", "netavark", "uidmap")
_CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "constraints.txt")


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


def build_image(tag: str, context: Path, *, embedder: Path, reranker: Path) -> int:
    """Build the Dockerfile with MODEL_SOURCE=local and these ONNX model folders; the image size in bytes."""
    for name in _CONTEXT_FILES:
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "services", context / "services", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    shutil.copytree(ROOT / "image", context / "image")
    shutil.copytree(embedder, context / "image" / "models" / "embedder")
    shutil.copytree(reranker, context / "image" / "models" / "reranker")
    args = ["build", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=cacert,src={CA_BUNDLE}"]
    podman(*args, str(context))
    return int(podman("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())
