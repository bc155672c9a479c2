"""`kubectl kustomize` (kustomize v5, built into kubectl, which every machine here has) over k8s/."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = ["Rendered", "render"]


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    # generated name -> the name written in the kustomization (rag-7244fdgg29 -> rag)
    generated: dict[str, str] = field(default_factory=dict)


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:  # a failure, never a skip: the k8s/ base would go unchecked
        pytest.fail("kubectl (with its built-in kustomize) is not on PATH")
    return found


def render(directory: Path, extra_components: tuple[str, ...] = ()) -> Rendered:
    """The objects `kubectl kustomize DIRECTORY` prints, with `extra_components` added to `components:`
    (in a copy of the directory: the checkout is never edited)."""
    with tempfile.TemporaryDirectory(prefix="kustomize-") as tmp:
        base = Path(shutil.copytree(directory, Path(tmp) / directory.name))
        kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
        if extra_components:
            kustomization["components"] = [*kustomization.get("components", []), *extra_components]
            (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        out = subprocess.run(
            [_kubectl(), "kustomize", str(base)], check=True, capture_output=True, text=True, timeout=60
        ).stdout
    objects = [obj for obj in yaml.safe_load_all(out) if obj]
    names = {g["name"] for g in kustomization.get("configMapGenerator", [])}
    generated = {
        obj["metadata"]["name"]: obj["metadata"]["name"].rsplit("-", 1)[0]
        for obj in objects
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].rsplit("-", 1)[0] in names
    }
    return Rendered(objects, generated)
