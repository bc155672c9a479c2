"""File integrity shared by bundles and model folders: checksums, atomic writes, whole-directory swaps."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["sha256_file", "staged_dir", "write_json_atomic"]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A fresh directory beside `out` to fill. When the block succeeds it replaces `out` whole; when it fails
    it is removed and `out` is untouched. Readers of `out` never see a half-written directory."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        work.chmod(0o755)  # mkdtemp makes it private; bundles and models are read by a serving user
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if not out.exists():
        os.replace(work, out)
        return
    # The old directory is moved aside, not deleted first, so `out` is missing for one rename at most.
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)
