"""Bundle artifacts in S3: immutable versions, channels with rollback, verified atomic pulls."""

from .download import download_prefix
from .pull import ARTIFACT_INFO, ArtifactInfo, PullResult, pull_bundle, read_artifact_info
from .registry import (
    Channel,
    default_version,
    list_artifacts,
    promote,
    push_bundle,
    read_channel,
    read_version_manifest,
    rollback,
)
from .store import S3Location, S3Store

__all__ = [
    "ARTIFACT_INFO",
    "ArtifactInfo",
    "Channel",
    "PullResult",
    "S3Location",
    "S3Store",
    "default_version",
    "download_prefix",
    "list_artifacts",
    "promote",
    "pull_bundle",
    "push_bundle",
    "read_artifact_info",
    "read_channel",
    "read_version_manifest",
    "rollback",
]
