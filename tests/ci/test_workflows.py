"""The GitHub Actions workflows: linted (actionlint, with shellcheck over every `run:` block), valid against
GitHub's schema, every job bounded in time and privilege, and everything they reference present."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ci_checks import (
    ROOT,
    WORKFLOWS,
    jobs_without_timeout,
    missing_references,
    permission_problems,
    references,
    workflows,
)
from rag_testkit.tools import require_tool

EXPECTED = {"ci.yml", "image.yml", "index.yml", "release.yml"}


def venv_tool(name: str) -> str:
    """A console script of the dev extra, beside the interpreter running the tests (or on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(workflow["jobs"][job]["steps"])


def uses(workflow: dict[str, Any], job: str, action: str) -> dict[str, Any]:
    found = [s for s in steps(workflow, job) if str(s.get("uses", "")).startswith(action + "@")]
    assert found, f"{job} does not use {action}"
    return found[0]


def runs(workflow: dict[str, Any], job: str) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(workflow, job))


def test_the_workflows_are_all_there() -> None:
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == EXPECTED
    assert not list(WORKFLOWS.glob("*.yaml"))  # one extension, so the globs here see every workflow


def test_actionlint_passes_with_shellcheck_over_run_blocks() -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    done = subprocess.run(
        [
            venv_tool("actionlint"),
            "-shellcheck",
            shellcheck,
            "-no-color",
            *sorted(map(str, WORKFLOWS.glob("*.yml"))),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_catch_a_shell_mistake(tmp_path: Path) -> None:
    """The lint really runs shellcheck on `run:` blocks (an unquoted variable is SC2086)."""
    shellcheck = require_tool("shellcheck", "shellcheck")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n"
        "    permissions: {}\n    steps:\n      - run: echo $HOME/x\n"
    )
    done = subprocess.run(
        [venv_tool("actionlint"), "-shellcheck", shellcheck, "-no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "SC2086" in done.stdout


def test_workflows_match_githubs_schema() -> None:
    done = subprocess.run(
        [
            venv_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *sorted(map(str, WORKFLOWS.glob("*.yml"))),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_job_has_a_timeout() -> None:
    assert {name: jobs_without_timeout(w) for name, w in workflows().items()} == {n: [] for n in EXPECTED}
    # the check itself: a job without one, or with a nonsense one, is named
    assert jobs_without_timeout(
        {"jobs": {"a": {"timeout-minutes": 5}, "b": {}, "c": {"timeout-minutes": "x"}}}
    ) == [
        "b",
        "c",
    ]


def test_every_job_has_least_privilege_permissions() -> None:
    assert {name: permission_problems(w) for name, w in workflows().items()} == {n: [] for n in EXPECTED}
    loose = {
        "permissions": "write-all",
        "jobs": {
            "a": {"steps": [{"run": "make test"}]},
            "b": {"permissions": {"id-token": "write"}, "steps": [{"run": "make test"}]},
        },
    }
    assert permission_problems(loose) == [
        "top-level permissions must be {} or contents: read, not 'write-all'",
        "job a: no permissions mapping of its own (None)",
        "job b: id-token: write is not needed by any step",
    ]


def test_every_script_make_target_and_path_referenced_exists() -> None:
    found = {name: missing_references(w) for name, w in workflows().items()}
    assert found == {n: [] for n in EXPECTED}
    # what the workflows lean on is really seen by the check (helm/rag: the chart release.yml packages)
    everything = [references(w) for w in workflows().values()]
    scripts = set().union(*(r.scripts for r in everything))
    assert {
        "ci/build-index.sh",
        "ci/publish-index.sh",
        "ci/promote-index.sh",
        "ci/build-image.sh",
        "ci/export-models.sh",
        "ci/release-chart.sh",
    } <= scripts
    assert {"test", "lint", "typecheck", "install", "install-artifacts"} <= set().union(
        *(r.make_targets for r in everything)
    )
    assert {"helm/rag", "sample-corpus", "ci/eval-set", "Dockerfile", "image/models"} <= set().union(
        *(r.paths for r in everything)
    )


def test_missing_references_are_named() -> None:
    broken = {
        "on": {"push": {"paths": ["docs/nowhere/**"]}},
        "jobs": {
            "a": {
                "steps": [
                    {"run": "ci/no-such-script.sh && make test no-such-target"},
                    {"with": {"key": "x-${{ hashFiles('services/nope.txt') }}"}},
                ]
            }
        },
    }
    assert missing_references(broken) == [
        "script ci/no-such-script.sh",
        "make target no-such-target",
        "path ci/no-such-script.sh",
        "path docs/nowhere",
        "path services/nope.txt",
    ]


def test_ci_runs_lint_and_make_test_on_pushes_and_pull_requests_with_caches() -> None:
    ci = workflows()["ci.yml"]
    assert {"push", "pull_request"} <= set(ci["on"])
    assert "make lint typecheck" in runs(ci, "lint")
    assert "make test" in runs(ci, "test")
    assert uses(ci, "lint", "actions/setup-python")["with"]["cache"] == "pip"
    cached = " ".join(
        str(s["with"]["path"]) for s in steps(ci, "test") if "actions/cache@" in str(s.get("uses"))
    )
    assert "~/.cache/pip" in cached and "~/.cache/huggingface" in cached


def test_index_builds_gates_publishes_to_staging_then_promotes_to_prod_behind_an_environment() -> None:
    index = workflows()["index.yml"]
    assert {"push", "schedule", "workflow_dispatch"} <= set(index["on"])
    assert "sample-corpus/**" in index["on"]["push"]["paths"]  # the corpus
    assert not any(
        path.startswith("docs") for path in index["on"]["push"]["paths"]
    )  # editing docs builds nothing
    jobs = index["jobs"]
    assert "ci/build-index.sh" in runs(index, "build-index")
    assert jobs["publish-index"]["needs"] == "build-index" and "ci/publish-index.sh" in runs(
        index, "publish-index"
    )
    # a rebuild with the same files as staging's version is not published again
    assert jobs["publish-index"]["if"] == "needs.build-index.outputs.changed == 'true'"
    assert jobs["build-index"]["outputs"]["changed"] == "${{ steps.build.outputs.changed }}"
    assert (
        jobs["promote-prod"]["needs"] == ["publish-index", "build-index-ray"]
        and jobs["promote-prod"]["environment"] == "production"
    )
    for job in ("build-index", "publish-index", "promote-prod"):
        assert jobs[job]["permissions"]["id-token"] == "write"
        aws = uses(index, job, "aws-actions/configure-aws-credentials")["with"]
        assert aws["role-to-assume"].startswith("${{") and "aws-region" in aws
    built = next(s for s in steps(index, "build-index") if s.get("run") == "ci/build-index.sh")
    assert built["env"]["CHANNEL"] == "staging"


def test_index_can_build_on_a_ray_cluster_instead_of_the_runner_and_promotes_either() -> None:
    """One of build-index and build-index-ray runs, by the same expression; prod follows whichever published."""
    index = workflows()["index.yml"]
    jobs = index["jobs"]
    assert index["on"]["workflow_dispatch"]["inputs"]["build_on"]["options"] == ["auto", "runner", "ray"]
    chooser = "((inputs.build_on != 'auto' && inputs.build_on) || vars.RAG_BUILD_ON || 'runner')"
    assert jobs["build-index"]["if"] == f"{chooser} == 'runner'"
    assert jobs["build-index-ray"]["if"] == f"{chooser} == 'ray'"
    submitted = next(s for s in steps(index, "build-index-ray") if s.get("run") == "ci/submit-index-build.sh")
    assert submitted["env"]["CHANNEL"] == "staging"
    assert int(submitted["env"]["TIMEOUT_SECONDS"]) < jobs["build-index-ray"]["timeout-minutes"] * 60
    assert jobs["build-index-ray"]["environment"] == "staging"  # the staging role, as publish-index has
    promote = jobs["promote-prod"]
    assert (
        "needs.build-index-ray.outputs.changed == 'true'" in promote["if"] and "!cancelled()" in promote["if"]
    )
    version = next(s for s in steps(index, "promote-prod") if s.get("run") == "ci/promote-index.sh")["env"][
        "VERSION"
    ]
    assert (
        "needs.publish-index.outputs.version" in version
        and "needs.build-index-ray.outputs.version" in version
    )


def test_image_uses_buildx_with_cache_tags_sbom_and_provenance() -> None:
    image = workflows()["image.yml"]
    uses(image, "image", "docker/setup-buildx-action")
    build = uses(image, "image", "docker/build-push-action")["with"]
    assert build["sbom"] is True and build["provenance"] == "mode=max"
    assert build["cache-from"] == "type=gha" and build["cache-to"].startswith("type=gha")
    tags = uses(image, "image", "docker/metadata-action")["with"]["tags"]
    assert "steps.plan.outputs.sha" in tags and "steps.plan.outputs.version" in tags
    models = next(s for s in steps(image, "image") if s.get("id") == "models")
    assert models["with"]["path"] == "image/models"  # exported models survive between runs


def test_release_packages_the_chart_and_pushes_it_to_an_oci_registry() -> None:
    release = workflows()["release.yml"]
    step = next(s for s in steps(release, "chart") if s.get("run") == "ci/release-chart.sh")
    assert step["env"]["CHART_DIR"] == "helm/rag"
    assert step["env"]["CHART_REGISTRY"].startswith("oci://ghcr.io/")
    assert release["jobs"]["chart"]["permissions"] == {"contents": "read", "packages": "write"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_third_party_input_never_reaches_a_shell_inline(name: str) -> None:
    """`${{ inputs.* }}`/`${{ github.event.* }}` inside `run:` is script injection; they go through env."""
    workflow = workflows()[name]
    for job in workflow["jobs"]:
        for step in steps(workflow, job):
            run = str(step.get("run", ""))
            assert "${{" not in run, f"{name} {job}: expression inside run: {run!r}"
