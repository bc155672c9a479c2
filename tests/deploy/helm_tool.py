"""Helm (rag_testkit.helm installs the pinned one), run with its own cache and config dirs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from manifests import CHART, Obj


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        # Helm's cache, config and data dirs: nothing from the user's ~/.config/helm leaks in or out.
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def template(
        self,
        *values: Path,
        sets: tuple[str, ...] = (),
        strings: tuple[str, ...] = (),
        release: str = "rag",
        kube_version: str = "1.29.0",
        show_only: str | None = None,
    ) -> list[Obj]:
        args = ["template", release, str(CHART), "--kube-version", kube_version]
        for path in values:
            args += ["--values", str(path)]
        for assignment in sets:
            args += ["--set", assignment]
        for assignment in strings:
            args += ["--set-string", assignment]
        if show_only:
            args += ["--show-only", show_only]
        return [doc for doc in yaml.safe_load_all(self.run(*args).stdout) if doc]
