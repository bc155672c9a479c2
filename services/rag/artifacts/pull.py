"""Pull one bundle version from S3 into a local directory: verified, whole, or not at all.

This is the init container's entrypoint (`rag artifacts pull`) and what the server's hot reload calls. The
files land in a fresh directory beside DEST, every SHA-256 is checked against the manifest, and only then is
the directory renamed into place, so DEST holds either the previous bundle or the complete new one — also
when the process is killed mid-download (the next run sweeps the leftovers). A lock file serialises pulls
into the same DEST (several gunicorn workers reloading at once).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from ..errors import BundleCorrupt, RagError
from ..files import sha256_file, staged_dir, write_json_atomic
from ..index import parse_manifest, verify_bundle
from ..index.manifest import ARTIFACT_INFO, MANIFEST_NAME, is_index_file
from .registry import checked_version, read_channel, read_version_manifest
from .store import S3Store

__all__ = ["ARTIFACT_INFO", "ArtifactInfo", "PullResult", "pull_bundle", "read_artifact_info"]


class ArtifactInfo(BaseModel):
    version: str
    source: str
    channel: str | None = None
    pulled_at: str


@dataclass(frozen=True)
class PullResult:
    version: str
    path: Path
    downloaded: bool  # False: DEST already held this version, verified


def read_artifact_info(bundle: Path) -> ArtifactInfo | None:
    path = bundle / ARTIFACT_INFO
    try:
        return ArtifactInfo.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f".{dest.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holds(dest: Path, manifest_bytes: bytes, indexes: bool) -> bool:
    """DEST is exactly this version, every file verified (a restarted pod with a cache volume)."""
    try:
        if (dest / MANIFEST_NAME).read_bytes() != manifest_bytes:
            return False
        verify_bundle(dest, parse_manifest(manifest_bytes, str(dest / MANIFEST_NAME)), indexes=indexes)
    except (OSError, RagError):
        return False
    return True


def _sweep_leftovers(dest: Path) -> None:
    # staged_dir's work directories (".<name>.<random>") of pulls that were killed; we hold the lock.
    for leftover in dest.parent.glob(f".{dest.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def pull_bundle(
    store: S3Store,
    dest: Path,
    *,
    version: str | None = None,
    channel: str | None = None,
    indexes: bool = True,
) -> PullResult:
    """The version (or the channel's) into `dest`, every file checked against the manifest. Without
    `indexes`, the BM25 and dense index files are left out: a pod whose candidates come from Milvus never
    reads them, and they are most of a bundle's bytes."""
    if (version is None) == (channel is None):
        raise ValueError("give exactly one of version and channel")
    if channel is not None:
        version = read_channel(store, channel).version
    assert version is not None
    version = checked_version(version)
    manifest_bytes, manifest = read_version_manifest(store, version)
    names = manifest.checked_paths()  # refuses absolute paths and '..' before anything is written
    names = [name for name in names if indexes or not is_index_file(name)]
    with _locked(dest):
        if _holds(dest, manifest_bytes, indexes):
            return PullResult(version, dest, downloaded=False)
        _sweep_leftovers(dest)
        with staged_dir(dest) as work:
            for name in names:
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                store.download_file(store.location.key("bundles", version, name), target)
                entry = manifest.files[name]
                if target.stat().st_size != entry.bytes or sha256_file(target) != entry.sha256:
                    raise BundleCorrupt(
                        f"{name} of version {version} does not match its SHA-256 in the manifest "
                        f"(s3://{store.location.bucket}/{store.location.key('bundles', version, name)})"
                    )
            (work / MANIFEST_NAME).write_bytes(manifest_bytes)
            info = ArtifactInfo(
                version=version,
                source=str(store.location),
                channel=channel,
                pulled_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            write_json_atomic(work / ARTIFACT_INFO, info.model_dump())
    return PullResult(version, dest, downloaded=True)
