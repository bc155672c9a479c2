"""k8s/ray/rayjob.yaml, the index build as a KubeRay RayJob: its shape, and every `rag` command of its
entrypoint parsed by the real CLI (a misspelt flag would fail the job only in the cluster)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from rag.cli import build_parser

RAYJOB = Path(__file__).resolve().parents[2] / "k8s" / "ray" / "rayjob.yaml"


def rag_commands(entrypoint: str) -> list[list[str]]:
    """The `rag …` commands of the entrypoint's `sh -ec '…'` script, as argument lists."""
    script = shlex.split(entrypoint)[2]
    script = re.sub(r"\$\((.*?)\)\s*(?=&&|$)", "", script)  # the version capture's own pipeline
    commands = []
    for part in script.split("&&"):
        words = shlex.split(part.strip().removeprefix("version="))
        if words and words[0] == "rag":
            commands.append(words[1:])
    return commands


def test_the_rayjob_builds_on_its_cluster_then_lets_it_go() -> None:
    job = yaml.safe_load(RAYJOB.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert int(head["rayStartParams"]["num-cpus"]) >= 2  # with 1, Ray Data's tasks and the actors deadlock
    commands = rag_commands(spec["entrypoint"])
    assert [c[:2] for c in commands] == [
        ["artifacts", "download"],
        ["build", "/work/corpus"],
        ["artifacts", "promote"],
    ]
    assert commands[1][-2:] == ["--ray", "auto"]
    assert "rag artifacts push /work/bundle --json" in spec["entrypoint"]
    for argv in [*commands, ["artifacts", "push", "/work/bundle", "--json"]]:
        build_parser().parse_args([a.replace('"', "") for a in argv])  # exits non-zero on a bad flag
    images = {c["image"] for c in head["template"]["spec"]["containers"]}
    for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
        images |= {c["image"] for c in group["template"]["spec"]["containers"]}
    assert len(images) == 1  # one image: the driver's and the actors' models and code are the same
