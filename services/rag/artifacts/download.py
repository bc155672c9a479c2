"""Copy every object under an S3 prefix into a local folder: a corpus kept in S3, for `rag build` (CI's
build-index takes a corpus location that is a path or an s3:// prefix)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..errors import ArtifactError, ArtifactNotFound
from ..files import staged_dir
from .store import S3Store

__all__ = ["download_prefix"]


def _safe(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or name.startswith("\\") or ":" in name:
        raise ArtifactError(f"refusing an object key that would leave the destination: {name!r}")
    return name


def download_prefix(store: S3Store, dest: Path) -> list[str]:
    """Every object under the store's prefix, at its relative path under `dest`; `dest` is replaced whole
    (filled beside it, then renamed), so a failed download leaves no half-copied corpus behind."""
    # "folder" markers (keys ending in /, the prefix itself among them) hold no file
    keys = [key for key in store.list_keys(store.location.prefix) if key and not key.endswith("/")]
    names = sorted(_safe(key) for key in keys)
    if not names:
        raise ArtifactNotFound(f"no objects under {store.location}")
    with staged_dir(dest) as work:
        for name in names:
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            store.download_file(store.location.key(name), target)
    return names
