"""Immutable bundle versions and the channels that point at them.

Layout under `s3://bucket/prefix/`:

    bundles/<version>/<every file of the bundle>   the manifest is uploaded last: it is the commit marker
    channels/<name>.json                           {version, previous, history, updated_at, updated_by}

A version without `manifest.json` was never committed (an interrupted push) and may be pushed again; one with
a manifest is immutable. Integrity is the project's own SHA-256 manifest, never S3 ETags (servers differ).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..errors import ArtifactConflict, ArtifactNotFound, BundleCorrupt
from ..index import parse_manifest, read_manifest, verify_bundle
from ..index.manifest import MANIFEST_NAME, Manifest
from .store import S3Store

__all__ = [
    "Channel",
    "default_version",
    "list_artifacts",
    "promote",
    "push_bundle",
    "read_channel",
    "read_version_manifest",
    "rollback",
]

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_HISTORY = 20  # versions a channel remembers for rollback


class Channel(BaseModel):
    name: str
    version: str
    previous: str | None = None
    history: list[str] = Field(default_factory=list, description="earlier versions, most recent first")
    updated_at: str
    updated_by: str


def checked_version(version: str) -> str:
    from ..errors import ConfigError

    if not _VERSION.match(version):
        raise ConfigError(f"bad version {version!r}: letters, digits, '.', '_' and '-' only (≤128)")
    return version


def checked_channel(name: str) -> str:
    from ..errors import ConfigError

    if not _CHANNEL.match(name):
        raise ConfigError(f"bad channel name {name!r}: lowercase letters, digits, '.', '_' and '-' only")
    return name


def default_version(manifest: Manifest) -> str:
    """Build time and corpus: sortable, and two builds of one corpus stay apart."""
    created = re.sub(r"[^0-9]", "", manifest.created_at)[:14]
    return f"{created}-{manifest.corpus_id[:12]}"


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def push_bundle(store: S3Store, bundle: Path, version: str | None = None) -> tuple[str, bool]:
    """Upload a verified local bundle as `version`; (version, uploaded?). A committed version is never
    overwritten: pushing it again is a no-op when byte-identical, else ArtifactConflict."""
    manifest = read_manifest(bundle)
    verify_bundle(bundle, manifest)  # never publish a damaged bundle
    version = checked_version(version or default_version(manifest))
    manifest_bytes = (bundle / MANIFEST_NAME).read_bytes()
    marker = store.location.key("bundles", version, MANIFEST_NAME)
    if store.exists(marker):
        if store.get_bytes(marker) == manifest_bytes:
            return version, False
        raise ArtifactConflict(
            f"version {version} already exists in {store.location} with other content; versions are immutable"
        )
    for name in manifest.checked_paths():
        store.upload_file(bundle / name, store.location.key("bundles", version, name))
    store.put_bytes(marker, manifest_bytes)  # last: the commit marker
    return version, True


def read_channel(store: S3Store, name: str) -> Channel:
    key = store.location.key("channels", f"{checked_channel(name)}.json")
    try:
        raw = store.get_bytes(key)
    except ArtifactNotFound:
        raise ArtifactNotFound(f"channel {name!r} does not exist in {store.location}") from None
    try:
        return Channel.model_validate_json(raw)
    except ValidationError as exc:
        raise BundleCorrupt(f"channel {name!r} ({key}) is not valid: {exc.errors()[0]['msg']}") from None


def read_version_manifest(store: S3Store, version: str) -> tuple[bytes, Manifest]:
    """A committed version's manifest, as stored (bytes) and parsed: what pulls verify against and what the
    quality gate reads a version's metrics from."""
    marker = store.location.key("bundles", checked_version(version), MANIFEST_NAME)
    try:
        raw = store.get_bytes(marker)
    except ArtifactNotFound:
        raise ArtifactNotFound(
            f"unknown version {version}: no {marker} in s3://{store.location.bucket}"
        ) from None
    return raw, parse_manifest(raw, f"s3://{store.location.bucket}/{marker}")


def _committed(store: S3Store, version: str) -> bool:
    return store.exists(store.location.key("bundles", checked_version(version), MANIFEST_NAME))


def _write_channel(store: S3Store, channel: Channel) -> None:
    body = json.dumps(channel.model_dump(), indent=2).encode()
    store.put_bytes(store.location.key("channels", f"{channel.name}.json"), body)  # one PUT: atomic in S3


def promote(store: S3Store, version: str, channel: str) -> Channel:
    if not _committed(store, version):
        raise ArtifactNotFound(f"version {version} is not in {store.location} (or its push never finished)")
    try:
        current: Channel | None = read_channel(store, channel)
    except ArtifactNotFound:
        current = None
    history = ([current.version, *current.history] if current else [])[:_HISTORY]
    updated = Channel(
        name=checked_channel(channel),
        version=version,
        previous=current.version if current else None,
        history=history,
        updated_at=_now(),
        updated_by=_actor(),
    )
    _write_channel(store, updated)
    return updated


def rollback(store: S3Store, channel: str) -> Channel:
    current = read_channel(store, channel)
    if not current.history:
        raise ArtifactNotFound(f"channel {channel!r} has no earlier version to roll back to")
    target, *rest = current.history
    updated = Channel(
        name=current.name,
        version=target,
        previous=current.version,
        history=rest,
        updated_at=_now(),
        updated_by=_actor(),
    )
    _write_channel(store, updated)
    return updated


def list_artifacts(store: S3Store) -> dict[str, Any]:
    versions = sorted(v for v in store.list_prefixes(store.location.key("bundles")) if _committed(store, v))
    channels = {}
    for key in store.list_keys(store.location.key("channels")):
        if key.endswith(".json") and "/" not in key:
            channel = read_channel(store, key[: -len(".json")])
            channels[channel.name] = channel.model_dump()
    return {"location": str(store.location), "versions": versions, "channels": channels}
