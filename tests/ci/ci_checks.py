"""Static checks over the GitHub Actions workflows: what every job must declare, and what they reference.

Plain functions over the parsed YAML, so tests can run them on the real workflows and on small broken ones
(a check that never fails proves nothing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"

# A token is taken for a repository path when it starts with one of these: the repo's own folders and files
# (build/ and .venv are outputs; ~/… and /… are outside the checkout).
REPO_DIRS = {
    ".ci",
    ".github",
    "benchmarks",
    "ci",
    "docs",
    "helm",
    "image",
    "sample-corpus",
    "services",
    "tests",
}
REPO_FILES = {".dockerignore", "Dockerfile", "Makefile", "README.md", "constraints.txt", "pyproject.toml"}
# A write permission must be needed by a step of the job: the action or script that uses it.
WRITE_NEEDS = {
    "id-token": ("aws-actions/configure-aws-credentials",),
    "packages": ("docker/login-action", "ci/release-chart.sh"),
}
_GLOB = re.compile(r"[*?\[{]")
_PROSE_KEYS = {"name", "description", "group"}  # labels, not paths: `name: ci` is no reference to ci/


def load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
        workflow["on"] = workflow.pop(True)
    return workflow


def workflows() -> dict[str, dict[str, Any]]:
    return {p.name: load(p) for p in sorted(WORKFLOWS.glob("*.yml"))}


def jobs_without_timeout(workflow: dict[str, Any]) -> list[str]:
    return [
        name
        for name, job in workflow.get("jobs", {}).items()
        if not isinstance(job.get("timeout-minutes"), int) or job["timeout-minutes"] <= 0
    ]


def permission_problems(workflow: dict[str, Any]) -> list[str]:
    """Least privilege: nothing at the top level beyond reading the code, every job states its own
    permissions, and each write is needed by one of the job's steps."""
    problems = []
    top = workflow.get("permissions")
    if top not in ({}, {"contents": "read"}):
        problems.append(f"top-level permissions must be {{}} or contents: read, not {top!r}")
    for name, job in workflow.get("jobs", {}).items():
        granted = job.get("permissions")
        if not isinstance(granted, dict):
            problems.append(f"job {name}: no permissions mapping of its own ({granted!r})")
            continue
        steps = " ".join(str(s.get("uses", "")) + " " + str(s.get("run", "")) for s in job.get("steps", []))
        for scope, level in granted.items():
            if level != "write":
                continue
            needs = WRITE_NEEDS.get(scope, ())
            if not any(n in steps for n in needs):
                problems.append(f"job {name}: {scope}: write is not needed by any step")
    return problems


def _strings(node: Any) -> Iterator[tuple[str, str]]:
    """(key, string) for every string in the workflow, with the mapping key it sits under."""
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((key, v) for v in value)
        elif isinstance(value, str):
            yield key, value


def _tokens(text: str) -> Iterator[str]:
    yield from re.findall(r"'([^']*)'", text)  # literals: hashFiles('…'), `vars.X || 'default'`
    without_expressions = re.sub(r"\$\{\{.*?\}\}", " ", text, flags=re.S)
    yield from re.split(r"[\s,;|&()\"'=<>]+", without_expressions)


def _repo_path(token: str) -> str | None:
    token = token.removeprefix("./").rstrip("/")
    if not token:
        return None
    first = token.split("/", 1)[0]
    if first not in REPO_DIRS and token not in REPO_FILES:
        return None
    fixed = _GLOB.split(token, maxsplit=1)[0].rstrip("/")  # docs/** → docs
    return fixed or None


@dataclass
class References:
    scripts: set[str] = field(default_factory=set)
    make_targets: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)


def references(workflow: dict[str, Any]) -> References:
    refs = References()
    for key, text in _strings(workflow):
        if key in _PROSE_KEYS:
            continue
        if key == "run":
            for targets in re.findall(r"\bmake\s+((?:[\w.-]+\s*)+)", text):
                refs.make_targets.update(t for t in targets.split() if not t.startswith("-"))
            refs.scripts.update(re.findall(r"(?:^|[\s;&|(])(?:\./)?(\.?ci/[\w.-]+)", text, flags=re.M))
        for token in _tokens(text):
            path = _repo_path(token)
            if path:
                refs.paths.add(path)
    return refs


def make_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    text = makefile.read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text, flags=re.M))


def missing_references(workflow: dict[str, Any], root: Path = ROOT) -> list[str]:
    refs = references(workflow)
    targets = make_targets(root / "Makefile")
    missing = [f"script {s}" for s in sorted(refs.scripts) if not os.access(root / s, os.X_OK)]
    missing += [f"make target {t}" for t in sorted(refs.make_targets - targets)]
    missing += [f"path {p}" for p in sorted(refs.paths) if not (root / p).exists()]
    return missing
