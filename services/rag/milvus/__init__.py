"""Retrieval on Milvus: a bundle version published as a collection, and the candidate source that searches it
(README "Retrieval on Milvus"). pymilvus is imported only when a Milvus setting is used."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..index import Bundle
    from .candidates import MilvusCandidates

__all__ = ["bundle_version", "channel_version", "connect", "milvus_candidates"]


def connect(settings: Settings, uri: str | None = None) -> Any:
    """A client of the configured server (pymilvus connects here, and raises if the server is down)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:  # pragma: no cover - the image and `make install` have it
        raise ConfigError("RAG_RETRIEVAL_BACKEND=milvus needs pymilvus (pip install 'rag[milvus]')") from None
    uri = uri or settings.milvus_uri
    if not uri:
        raise ConfigError("no Milvus server: set RAG_MILVUS_URI (e.g. http://milvus:19530)")
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    # A connection of its own: pymilvus shares one per URI and token between clients, and closing any of
    # them (after a failed call, or the reloader's look at an alias) would close every search in flight.
    alias = f"rag-{uuid.uuid4().hex}"
    return MilvusClient(uri=uri, token=token, timeout=settings.milvus_timeout_seconds, alias=alias)


def bundle_version(bundle: Bundle) -> str:
    """The version a bundle was pushed as (its artifact.json, written by `rag artifacts pull`), else the
    version `rag artifacts push` would give it."""
    from ..artifacts import default_version, read_artifact_info

    info = read_artifact_info(bundle.path)
    return info.version if info is not None else default_version(bundle.manifest)


def milvus_candidates(settings: Settings, bundle: Bundle) -> MilvusCandidates:
    from .candidates import MilvusCandidates
    from .schema import collection_name

    collection = collection_name(settings.milvus_prefix, bundle_version(bundle))
    return MilvusCandidates(
        lambda: connect(settings), collection, bundle, settings.milvus_timeout_seconds, settings.milvus_bm25
    )


def channel_version(settings: Settings, channel: str) -> str:
    """The version the channel's alias points at: what a pod following the channel (hot reload with
    RAG_RETRIEVAL_BACKEND=milvus) serves next. An engine that cannot say is a MilvusError, so the reload
    counts a failure and asks again at its next poll."""
    from ..errors import MilvusError
    from .publish import resolve_alias
    from .schema import alias_name

    alias = alias_name(settings.milvus_prefix, channel)
    client = None
    try:
        client = connect(settings)
        found = resolve_alias(client, alias)
    except Exception as exc:  # grpc and pymilvus errors alike
        raise MilvusError(f"Milvus alias {alias}: {type(exc).__name__}: {str(exc).strip()[:300]}") from None
    finally:
        if client is not None:
            client.close()
    if found is None:
        raise MilvusError(f"Milvus has no alias {alias}: promote a version to channel {channel!r} first")
    return found[1]
