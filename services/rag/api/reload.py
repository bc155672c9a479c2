"""Hot reload: follow a channel in S3 and swap to each new bundle version between requests.

Off by default (`RAG_RELOAD_INTERVAL_SECONDS=0`). When on, a background task asks the channel for its
version every interval (and `POST /admin/reload` asks at once). A new version is pulled into its own
directory (verified, atomic; see artifacts.pull), loaded with the models already in memory, warmed up, and
only then swapped in. Requests in flight keep the pipeline object they started with, so they finish on the
old bundle; `/ready` stays 200 throughout. A version that fails to pull, verify, load or warm is logged,
counted, remembered (versions are immutable: it will not get better) and the old bundle keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import RagError, ReloadRejected
from ..index import Bundle
from ..pipeline import Pipeline, retrieval
from .metrics import RELOADS
from .state import ServiceState, say_unread, warm_up

if TYPE_CHECKING:
    from ..artifacts import S3Store

__all__ = ["ReloadOutcome", "Reloader", "load_beside"]

log = logging.getLogger("rag.api")

_KEEP_VERSIONS = 2  # the one served and the one before it (requests may still be finishing on it)


@dataclass(frozen=True)
class ReloadOutcome:
    version: str | None
    changed: bool
    previous: str | None = None
    error: RagError | None = None


class Reloader:
    def __init__(self, settings: Settings, state: ServiceState) -> None:
        self.settings = settings
        self.state = state
        self.versions_root = Path(settings.bundle_dir).resolve().parent / "versions"
        self.rejected: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.artifacts_uri and self.settings.reload_channel)

    async def poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_seconds)
            if self.state.pipeline is not None and not self.state.draining:
                await self.reload()

    async def reload(self) -> ReloadOutcome:
        """Check the channel once; swap when it names a new version. Never raises: the outcome says."""
        async with self._lock:
            current = self.state.version
            try:
                prepared = await asyncio.get_running_loop().run_in_executor(None, self._prepare, current)
            except RagError as exc:
                RELOADS.labels("failure").inc()
                log.error(
                    "reload rejected: %s", exc, extra={"error_type": exc.error_type, "serving": current}
                )
                return ReloadOutcome(current, False, error=exc)
            if prepared is None:
                return ReloadOutcome(current, False)
            version, pipeline = prepared
            self.state.install(pipeline, version)  # on the loop thread: between requests
            RELOADS.labels("success").inc()
            log.info("reloaded", extra={"version": version, "previous": current})
            self._prune(keep={version, current or ""})
            return ReloadOutcome(version, True, previous=current)

    def _prepare(self, current: str | None) -> tuple[str, Pipeline] | None:
        """(version, warmed pipeline) for a new version, None when the channel has not moved. In a thread."""
        from ..artifacts import S3Location, S3Store, pull_bundle

        assert self.settings.artifacts_uri and self.settings.reload_channel
        store = S3Store(
            S3Location.parse(self.settings.artifacts_uri),
            endpoint_url=self.settings.s3_endpoint_url,
            deadline_seconds=self.settings.artifacts_timeout_seconds,
        )
        version = self._pointed_version(store)
        if version == current:
            return None
        if version in self.rejected:
            raise ReloadRejected(f"version {version} was rejected before: {self.rejected[version]}")
        try:
            indexes = self.settings.retrieval_backend != "milvus"  # searched in the engine: not pulled
            result = pull_bundle(store, self.versions_root / version, version=version, indexes=indexes)
            pipeline = load_beside(self.settings, self.state.require_pipeline(), result.path)
        except RagError as exc:
            self.rejected[version] = str(exc)
            shutil.rmtree(self.versions_root / version, ignore_errors=True)
            raise
        if reason := pipeline.unavailable():
            # Not remembered as rejected: the engine may be back, or the collection loaded, at the next poll.
            raise ReloadRejected(f"version {version} cannot serve yet: {reason}")
        return version, pipeline

    def _pointed_version(self, store: S3Store) -> str:
        """The version the channel names. With Milvus serving retrieval the channel's alias is the pointer
        (promote and rollback switch it first, then the S3 record): the pod follows what the engine
        serves, pulls that version's bundle from S3, and searches that version's own collection."""
        from ..artifacts import read_channel

        assert self.settings.reload_channel
        if self.settings.retrieval_backend == "milvus":
            from ..milvus import channel_version

            return channel_version(self.settings, self.settings.reload_channel)
        return read_channel(store, self.settings.reload_channel).version

    def _prune(self, keep: set[str]) -> None:
        if not self.versions_root.is_dir():
            return
        folders = sorted(
            (p for p in self.versions_root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for folder in folders[_KEEP_VERSIONS:]:
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)


def load_beside(settings: Settings, old: Pipeline, path: Path) -> Pipeline:
    """A warmed pipeline over the bundle at `path` with the models already in memory; the swap path's
    "prepare" half (hot reload, activated ingestion jobs). In a thread: loading and warming take a while."""
    # Searches where the first pipeline did (this version's own Milvus collection, say); refuses another model.
    bundle, source = retrieval(settings, Bundle.from_settings(path, settings))
    pipeline = Pipeline(bundle, old.embedder, old.reranker, old.params, source)
    pipeline.load_seconds = old.load_seconds
    say_unread(pipeline)
    warm_up(pipeline)
    return pipeline
