"""The ci/ scripts: shellcheck-clean, strict, every setting documented; build-image and release-chart by their
argument handling (a dry run, and a stand-in for the container tool: no image is built here)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ci_checks import ROOT
from rag_testkit.tools import require_tool

CI = ROOT / "ci"
SCRIPTS = sorted(p for p in CI.glob("*.sh") if os.access(p, os.X_OK))


def header(script: Path) -> str:
    """The leading comment block: where a script documents what it does and every setting it reads."""
    lines = script.read_text(encoding="utf-8").splitlines()[1:]
    return "\n".join(line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))])


def run(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CHART_", "REGISTRY_"))}
    return subprocess.run(
        [str(CI / script)], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_shellcheck_passes_on_every_script() -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    files = [*map(str, CI.glob("*.sh")), str(ROOT / ".ci" / "run")]
    done = subprocess.run(
        [shellcheck, "--external-sources", *files], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pipeline_scripts_exist_and_are_executable() -> None:
    names = {p.name for p in SCRIPTS}
    assert {
        "build-index.sh",
        "publish-index.sh",
        "promote-index.sh",
        "build-image.sh",
        "export-models.sh",
        "release-chart.sh",
        "build-base-image.sh",
    } <= names
    assert not (CI / "lib.sh").stat().st_mode & stat.S_IXUSR  # sourced, never run


@pytest.mark.parametrize(
    "script", [p for p in SCRIPTS if p.name != "build-base-image.sh"], ids=lambda p: p.name
)
def test_scripts_are_strict_and_document_every_setting(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    settings = set(re.findall(r"^([A-Z][A-Z0-9_]*)=\$\{\1[:-]", text, flags=re.M))
    assert settings, "configured by env vars"
    undocumented = sorted(s for s in settings if not re.search(rf"\b{s}\b", header(script)))
    assert undocumented == []


def test_build_image_dry_run_tags_the_git_sha_and_the_version(tmp_path: Path) -> None:
    gh = tmp_path / "github-output"
    done = run(
        "build-image.sh",
        {
            "DRY_RUN": "1",
            "IMAGE": "ghcr.io/acme/rag",
            "MODEL_SOURCE": "hub",
            "QUANTIZE": "none",
            "EMBEDDING_MODEL": "intfloat/e5-small-v2",
            "GIT_SHA": "0123456789ab",
            "CONTAINER_TOOL": "docker",
            "CA_BUNDLE": "",
            "GITHUB_OUTPUT": str(gh),
        },
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert done.stdout.splitlines() == ["ghcr.io/acme/rag:0123456789ab", f"ghcr.io/acme/rag:{version[1]}"]
    command = done.stderr.strip()
    assert command.startswith("+ docker build --build-arg BASE_IMAGE=python:3.11-slim")
    for part in (
        "--build-arg MODEL_SOURCE=hub",
        "--build-arg QUANTIZE= ",  # empty: the Dockerfile exports fp32 (no --quantize)
        "--build-arg EMBEDDING_MODEL=intfloat/e5-small-v2",
        "--label org.opencontainers.image.revision=0123456789ab",
        f"-t ghcr.io/acme/rag:0123456789ab -t ghcr.io/acme/rag:{version[1]} {ROOT}",
    ):
        assert part in command
    assert "--secret" not in command and "--format" not in command and "push" not in command
    assert outputs(gh) == {
        "image": "ghcr.io/acme/rag",
        "sha": "0123456789ab",
        "version": version[1],
        "tags": f"ghcr.io/acme/rag:0123456789ab,ghcr.io/acme/rag:{version[1]}",
        "quantize": "",
    }


def test_build_image_runs_the_container_tool_and_pushes_both_tags(tmp_path: Path) -> None:
    """A stand-in podman records its arguments: the real one is exercised by `make image-test`."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "podman"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = {
        "CONTAINER_TOOL": str(fake),
        "GIT_SHA": "abc",
        "VERSION": "1.2.3",
        "PUSH": "1",
        "MODEL_SOURCE": "hub",
    }
    done = run("build-image.sh", {**env, "CA_BUNDLE": str(tmp_path / "no-ca.crt")}, tmp_path)
    assert done.returncode == 0, done.stderr
    build, push_sha, push_version = calls.read_text().splitlines()
    assert build.startswith("build --format docker ")  # podman: keep HEALTHCHECK (OCI format drops it)
    assert "QUANTIZE=int8" in build and build.endswith(f"-t localhost/rag:abc -t localhost/rag:1.2.3 {ROOT}")
    assert (push_sha, push_version) == ("push localhost/rag:abc", "push localhost/rag:1.2.3")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL_SOURCE": "s3"}, "MODEL_SOURCE must be local or hub, not 's3'"),
        ({"QUANTIZE": "int4"}, "QUANTIZE must be int8 or none, not 'int4'"),
        ({"VERSION": "1.0 beta"}, "'1.0 beta' is not a valid image tag"),
    ],
)
def test_build_image_refuses_bad_settings_before_building(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = run("build-image.sh", {"DRY_RUN": "1", "GIT_SHA": "abc", **env}, tmp_path)
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""


def chart(tmp_path: Path) -> Path:
    folder = tmp_path / "chart"
    folder.mkdir()
    (folder / "Chart.yaml").write_text("apiVersion: v2\nname: rag\nversion: 0.1.0\nappVersion: '0.1.0'\n")
    return folder


def test_release_chart_versions_the_chart_from_the_tag_and_pushes_to_oci(tmp_path: Path) -> None:
    gh = tmp_path / "github-output"
    env = {
        "DRY_RUN": "1",
        "CHART_DIR": str(chart(tmp_path)),
        "CHART_REGISTRY": "oci://ghcr.io/Acme-Org/charts",
        "APP_VERSION": "0.9.0",
        "OUT_DIR": str(tmp_path / "out"),
        "GITHUB_REF_TYPE": "tag",
        "GITHUB_REF_NAME": "v1.4.0",
        "REGISTRY_USERNAME": "bot",
        "REGISTRY_PASSWORD": "s3cret-token",
        "GITHUB_OUTPUT": str(gh),
    }
    done = run("release-chart.sh", env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["oci://ghcr.io/acme-org/charts/rag:1.4.0"]  # OCI names are lowercase
    commands = done.stderr.splitlines()
    assert commands == [
        f"+ helm lint {env['CHART_DIR']}",
        f"+ helm package {env['CHART_DIR']} --destination {tmp_path}/out --version 1.4.0 --app-version 0.9.0",
        "+ helm registry login ghcr.io --username bot --password-stdin",
        f"+ helm push {tmp_path}/out/rag-1.4.0.tgz oci://ghcr.io/acme-org/charts",
    ]
    assert "s3cret-token" not in done.stdout + done.stderr
    assert outputs(gh) == {"chart": "oci://ghcr.io/acme-org/charts/rag:1.4.0"}
    # without a tag the chart keeps its own version
    untagged = {k: v for k, v in env.items() if not k.startswith("GITHUB_REF")}
    assert run("release-chart.sh", untagged, tmp_path).stdout.endswith("rag:0.1.0\n")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHART_VERSION": "one"}, "'one' is not a semantic version"),
        ({"CHART_REGISTRY": "https://ghcr.io/x"}, "must start with oci://"),
        ({"DRY_RUN": "0", "CHART_REGISTRY": ""}, "CHART_REGISTRY is not set"),
        ({"CHART_DIR": "/nonexistent"}, "no chart at /nonexistent"),
    ],
)
def test_release_chart_refuses_bad_settings(tmp_path: Path, env: dict[str, str], message: str) -> None:
    base = {"DRY_RUN": "1", "CHART_DIR": str(chart(tmp_path)), "CHART_REGISTRY": "oci://r.example/c"}
    done = run("release-chart.sh", {**base, **env}, tmp_path)
    assert done.returncode == 2 and message in done.stderr


def test_the_repository_chart_is_what_release_publishes() -> None:
    chart_yaml = ROOT / "helm" / "rag" / "Chart.yaml"
    assert chart_yaml.is_file(), "release.yml packages helm/rag"
    assert re.search(r"^name: *rag\s*$", chart_yaml.read_text(), re.M)


def test_index_scripts_refuse_to_run_unconfigured(tmp_path: Path) -> None:
    env = {"RAG_ARTIFACTS_URI": "", "VERSION": ""}
    published = run("publish-index.sh", env, tmp_path)
    assert published.returncode == 2 and "RAG_ARTIFACTS_URI is not set" in published.stderr
    promoted = run("promote-index.sh", env, tmp_path)
    assert promoted.returncode == 2 and "VERSION is not set" in promoted.stderr
    built = run("build-index.sh", {"EVAL_SET": str(tmp_path / "none"), "VENV": str(tmp_path)}, tmp_path)
    assert built.returncode == 2 and "EVAL_SET" in built.stderr


def fake_cluster(tmp_path: Path, states: list[str]) -> dict[str, str]:
    """Stand-ins for helm (records its arguments) and kubectl (answers the RayJob's status with the next of
    `states`, then the last one again): the real RayJob runs in tests/deploy/test_rayjob.py."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "states").write_text("\n".join(states) + "\n")
    helm, kubectl = bin_dir / "helm", bin_dir / "kubectl"
    helm.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/helm-calls\n')
    kubectl.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *reason*) echo "DeadlineExceeded: the job ran past activeDeadlineSeconds"; exit 0;; esac\n'
        f"state=$(head -n 1 {tmp_path}/states)\n"
        f'if [ "$(wc -l < {tmp_path}/states)" -gt 1 ]; then sed -i 1d {tmp_path}/states; fi\n'
        'printf "%s" "$state"\n'
    )
    for path in (helm, kubectl):
        path.chmod(0o755)
    return {"HELM": str(helm), "KUBECTL": str(kubectl), "POLL_SECONDS": "0"}


def submit_env(tmp_path: Path, s3_server: str, bucket: str) -> dict[str, str]:
    return {
        "CORPUS": f"s3://{bucket}/corpus",
        "EVAL_SET": f"s3://{bucket}/eval-set",
        "RAG_ARTIFACTS_URI": f"s3://{bucket}/rag",
        "RAG_S3_ENDPOINT_URL": s3_server,
        "VERSION": "ray-1",
        "RELEASE": "index-nightly",
        "GITHUB_OUTPUT": str(tmp_path / "github-output"),
        "VENV": str(Path(sys.executable).parent.parent),
    }


def test_submit_index_build_installs_the_chart_waits_and_reports_the_published_version(
    tmp_path: Path, s3_server: str, bucket: str, aws_credentials: None, tiny_bundle: Path
) -> None:
    env = {
        **submit_env(tmp_path, s3_server, bucket),
        **fake_cluster(tmp_path, ["", "Running/RUNNING", "Complete/SUCCEEDED"]),
    }
    # what the RayJob does when it publishes: the version is in S3 by the time the job has succeeded
    venv_bin = Path(sys.executable).parent
    pushed = subprocess.run(
        [str(venv_bin / "rag"), "artifacts", "push", str(tiny_bundle), "--version", "ray-1"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    done = run("submit-index-build.sh", env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ray-1"
    assert outputs(tmp_path / "github-output") == {"changed": "true", "version": "ray-1"}
    (call,) = (tmp_path / "helm-calls").read_text().splitlines()
    assert call.startswith(f"upgrade --install index-nightly {ROOT}/helm/rag-index-build ")
    assert (
        f"corpusUri=s3://{bucket}/corpus,evalSetUri=s3://{bucket}/eval-set,artifacts.uri=s3://{bucket}/rag"
        in call
    )
    assert "channel=staging,version=ray-1" in call


@pytest.mark.parametrize(
    ("states", "status", "says"),
    [
        (["Running/RUNNING", "Complete/SUCCEEDED"], 0, "published nothing: the bundle is unchanged"),
        (["Running/RUNNING", "Complete/FAILED"], 1, "ended Complete/FAILED: DeadlineExceeded"),
        (["Failed/"], 1, "ended Failed/: DeadlineExceeded: the job ran past activeDeadlineSeconds"),
    ],
)
def test_submit_index_build_reports_a_job_that_failed_or_published_nothing(
    tmp_path: Path,
    s3_server: str,
    bucket: str,
    aws_credentials: None,
    states: list[str],
    status: int,
    says: str,
) -> None:
    env = {**submit_env(tmp_path, s3_server, bucket), **fake_cluster(tmp_path, states)}
    done = run("submit-index-build.sh", env, tmp_path)
    assert done.returncode == status and says in done.stderr, done.stderr
    assert done.stdout == ""
    if status == 0:
        assert outputs(tmp_path / "github-output") == {"changed": "false"}


def test_submit_index_build_gives_up_at_its_timeout_and_refuses_a_local_corpus(
    tmp_path: Path, s3_server: str, bucket: str, aws_credentials: None
) -> None:
    env = {**submit_env(tmp_path, s3_server, bucket), **fake_cluster(tmp_path, ["Running/RUNNING"])}
    late = run("submit-index-build.sh", {**env, "TIMEOUT_SECONDS": "0"}, tmp_path)
    assert late.returncode == 2 and "did not end within 0s (last state: Running/RUNNING)" in late.stderr
    local = run("submit-index-build.sh", {**env, "CORPUS": "sample-corpus"}, tmp_path)
    assert local.returncode == 2 and "CORPUS must be an s3:// prefix" in local.stderr
