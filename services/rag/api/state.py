"""What one worker knows about itself: its pipeline (once loaded), readiness, cache and admission."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any

from ..artifacts.pull import read_artifact_info
from ..config import Settings
from ..errors import NotReady, RagError, RetrievalUnavailable
from ..pipeline import Pipeline
from ..redact import redact
from .admission import Admission
from .cache import AnswerCache
from .metrics import INDEX_CREATED, INDEX_INFO, MODEL_LOAD_SECONDS, READY
from .schemas import ReadyBody

__all__ = ["ServiceState", "warm_up"]

log = logging.getLogger("rag.api")

WARMUP_QUESTION = "What is this collection about?"


def warm_up(pipeline: Pipeline) -> float:
    """One answer through every stage, the reranker on 2 pairs: the first run of each ONNX session pays its
    allocations, and 2 pairs do that as well as 20 (a bge-base-size rerank of 20 pairs takes ~2 s here).

    Returns a first guess, in seconds, of what an answer costs: the warm-up's time with its rerank stage
    scaled from 2 pairs to the `rerank_top_n` an answer scores."""
    params = pipeline.resolve({"rerank": True, "rerank_top_n": 2})
    try:
        timings = pipeline.answer(WARMUP_QUESTION, params).timings_ms
    except RetrievalUnavailable:
        # The retrieval engine is not up yet: /ready says what the pod waits for instead of the pod failing
        # for good, and the models warm on the bundle's own candidates, or alone when it has no indexes.
        if pipeline.bundle.has_indexes:
            timings = pipeline.with_candidates(None).answer(WARMUP_QUESTION, params).timings_ms
        else:
            timings = _warm_models(pipeline)
    rerank_ms = timings.get("rerank", 0.0)
    return (timings.get("total", 0.0) + rerank_ms * (pipeline.params.rerank_top_n / 2 - 1)) / 1000.0


def say_unread(pipeline: Pipeline) -> None:
    """Log, before a pipeline serves, each model that cannot read its bundle's text: its answers' confidence
    would mean nothing there (say, a bundle built with a multilingual embedder, served with an English
    reranker)."""
    for warning in pipeline.unread_warnings():
        log.warning(warning, extra={"unread_share": pipeline.unread_share})


def _warm_models(pipeline: Pipeline) -> dict[str, float]:
    """The warm-up's model calls without retrieval: the question embedded, 2 pairs reranked."""
    started = time.perf_counter()
    pipeline.embedder.encode([WARMUP_QUESTION], kind="query")
    rerank_started = time.perf_counter()
    if pipeline.reranker is not None:
        pipeline.reranker.score(WARMUP_QUESTION, [WARMUP_QUESTION, WARMUP_QUESTION])
    done = time.perf_counter()
    return {"total": (done - started) * 1000.0, "rerank": (done - rerank_started) * 1000.0}


class ServiceState:
    def __init__(
        self, settings: Settings, pipeline: Pipeline | None = None, preload_error: RagError | None = None
    ) -> None:
        self.settings = settings
        self.pipeline: Pipeline | None = None
        self.phase: str = "starting"
        self.reason: str | None = "loading the bundle and models"
        self.error_type: str | None = None
        self.draining = False
        self.cache = AnswerCache(
            settings.cache_size, settings.cache_ttl_seconds, max_bytes=settings.cache_max_bytes
        )
        self.admission = Admission(
            settings.max_concurrency,
            settings.inference_threads,
            settings.request_timeout_seconds,
            settings.max_queue_seconds,
        )
        self.preloaded = pipeline
        self.preload_error = preload_error
        self.settled: asyncio.Future[None] | None = None  # the loader, once started
        self.version: str | None = None
        self._index_labels: tuple[str, str, str] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self, load: Callable[[], Pipeline]) -> None:
        """Load (unless preloaded) and warm up; never raises — a failure is reported by /ready."""
        try:
            if self.preload_error is not None:
                raise self.preload_error
            pipeline = self.preloaded or load()
            say_unread(pipeline)
            for part, seconds in pipeline.load_seconds.items():
                MODEL_LOAD_SECONDS.labels(part).set(seconds)
            if self.settings.warmup:
                started = time.perf_counter()
                # Admission's first guess of an answer's cost (too low a guess admitted 32 reranked answers
                # at once, the last waiting ~7 s); the measured times take over within a few answers.
                self.admission.learn(warm_up(pipeline))
                MODEL_LOAD_SECONDS.labels("warmup").set(time.perf_counter() - started)
            self.install(pipeline)
        except RagError as exc:
            self._fail(str(exc), exc.error_type)
        except Exception as exc:  # the pod must report why it will never be ready, not crash-loop silently
            log.exception("startup failed")
            self._fail(f"{type(exc).__name__}: {exc}", "internal")

    def _fail(self, reason: str, error_type: str) -> None:
        self.phase, self.reason, self.error_type = "failed", redact(reason), error_type
        log.error("not ready: %s", reason, extra={"error_type": error_type})

    def install(self, pipeline: Pipeline, version: str | None = None) -> None:
        """Serve `pipeline` from now on. Requests in flight keep the one they started with."""
        manifest = pipeline.bundle.manifest
        if version is None:
            info = read_artifact_info(pipeline.bundle.path)
            version = info.version if info else f"local-{manifest.corpus_id[:12]}"
        if self._index_labels is not None:
            INDEX_INFO.labels(*self._index_labels).set(0)
        self.cache.bind(manifest.corpus_id)
        self.pipeline = pipeline
        self.version = version
        self._index_labels = (version, manifest.corpus_id, manifest.embedding_model.name)
        INDEX_INFO.labels(*self._index_labels).set(1)
        INDEX_CREATED.set(datetime.fromisoformat(manifest.created_at).timestamp())
        self.phase, self.reason, self.error_type = "ready", None, None
        READY.set(1)
        log.info(
            "ready",
            extra={
                "version": version,
                "corpus_id": manifest.corpus_id,
                "units": manifest.counts,
                "load_seconds": pipeline.load_seconds,
            },
        )

    def stop(self) -> None:
        READY.set(0)
        self.admission.shutdown()

    # ---- questions the routes ask -----------------------------------------------------------------------

    async def pipeline_when_loaded(self) -> Pipeline:
        """The pipeline; while this worker is still loading, wait for it (up to the request deadline)."""
        if self.pipeline is None and self.settled is not None and not self.settled.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.settled), self.settings.request_timeout_seconds)
        return self.require_pipeline()

    def require_pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise NotReady(f"the service is not ready: {self.reason}")
        return self.pipeline

    def readiness(self) -> ReadyBody:
        corpus_id = self.pipeline.corpus_id if self.pipeline else None
        if self.phase != "ready":
            return ReadyBody(status="failed" if self.phase == "failed" else "starting", reason=self.reason)
        if self.draining:
            return ReadyBody(status="draining", reason="shutting down", corpus_id=corpus_id)
        if self.admission.saturated:
            return ReadyBody(
                status="saturated",
                reason=f"{self.admission.in_flight} requests in flight",
                corpus_id=corpus_id,
            )
        if self.pipeline is not None and (reason := self.pipeline.unavailable()):
            return ReadyBody(status="unavailable", reason=reason, corpus_id=corpus_id)
        return ReadyBody(status="ready", corpus_id=corpus_id)

    # ---- SIGTERM -----------------------------------------------------------------------------------------

    def install_drain_handler(self) -> None:
        """On SIGTERM: /ready turns 503 at once, and the server's own shutdown starts `drain_seconds` later.

        That gap lets a load balancer's health check take the instance out of rotation before it stops
        accepting connections. A second SIGTERM stops at once. Call it on the event loop's thread.
        """
        seconds = self.settings.drain_seconds
        if seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        loop = asyncio.get_running_loop()

        def forward(signum: int, frame: FrameType | None) -> None:
            if callable(previous):
                previous(signum, frame)
            else:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.raise_signal(signal.SIGTERM)

        def drain(signum: int, frame: FrameType | None) -> None:
            READY.set(0)
            log.info("SIGTERM: draining", extra={"drain_seconds": seconds})
            timer = threading.Timer(seconds, forward, args=(signum, frame))
            timer.daemon = True
            timer.start()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:
                forward(signum, frame)
                return
            # Only a plain assignment here. The handler runs between two bytecodes of the main thread, which
            # may hold a lock (a metric's, logging's) that the rest needs: taking it here deadlocked the
            # worker (its loop never answered again). The event loop does the rest, lock-free to schedule.
            self.draining = True
            loop.call_soon_threadsafe(drain, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def describe(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "version": self.version,
            "draining": self.draining,
            "in_flight": self.admission.in_flight,
            "preloaded": self.preloaded is not None,  # loaded before fork, shared with the other workers
            "retrieval": self.pipeline.describe_retrieval() if self.pipeline is not None else None,
        }
