"""The offline twin of `Pipeline`: a corpus becomes an index bundle.

segment → embed (through the embedding cache when there is one) → SQLite store + BM25 + FAISS → manifest
(checksums last). The bundle is written into a temporary directory beside the destination and renamed into
place, so a crash never leaves a half-written bundle where a good one was. The CLI, ingestion jobs, the
evaluator, the tests and the benchmarks all build through `Builder`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from ..config import BuildConfig, Settings
from ..corpus import (
    Document,
    Limits,
    LoadReport,
    Segmentation,
    corpus_id,
    load_corpus,
    segment_corpus,
    unit_texts,
)
from ..errors import BundleError, CorpusError
from ..files import sha256_file, staged_dir, write_json_atomic
from ..models import EmbeddingModel
from .dense import write_dense
from .embedding_cache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, EmbeddingCache, embedder_namespace
from .lexical import write_bm25
from .manifest import (
    BM25_DIR,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SENTENCE_VECTORS_FILE,
    STORE_FILE,
    FileEntry,
    Manifest,
    ModelInfo,
    manifest_json,
)
from .progress import BuildProgress, TqdmProgress
from .ray_embedding import CHUNK, RayEmbedding
from .store import write_store

__all__ = ["BuildResult", "Builder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: Manifest
    seconds: float
    embed_seconds: float
    embedded: int
    cache_hits: int


@dataclass(frozen=True)
class _Vectors:
    units: np.ndarray
    sentences: np.ndarray | None  # passage/document units only
    seconds: float


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


class Builder:
    """Builds bundles with one embedder and one `BuildConfig`.

    `cache_path`: an embedding cache (SQLite) read before embedding and written after, so a rebuild embeds
    only what changed. `batch_invariant` (default: on when there is a cache) embeds each text on its own. A
    text's vector then depends on nothing but the text and the model: in a padded batch the padding length
    and the batch's shape change the kernels' summation order (and int8 dynamic quantisation scales
    activations per batch), so the same text embedded beside other texts differs in the last bits. With it,
    a rebuild that reuses cached vectors writes exactly the bytes of a cold build of the same corpus. On CPU
    it costs little (MiniLM: batch 1 ≈ batched throughput here, docs/PERF_NOTES); `config.batch_size`
    applies without it.
    """

    def __init__(
        self,
        embedder: EmbeddingModel | Callable[[], EmbeddingModel],
        config: BuildConfig | None = None,
        *,
        cache_path: str | Path | None = None,
        cache_max_entries: int = DEFAULT_MAX_ENTRIES,
        cache_max_bytes: int = DEFAULT_MAX_BYTES,
        batch_invariant: bool | None = None,
        ray: RayEmbedding | None = None,
    ) -> None:
        # A loader is called at the first build: the corpus is read and checked before a model is loaded.
        self._load_embedder = (lambda: embedder) if isinstance(embedder, EmbeddingModel) else embedder
        self.config = config or BuildConfig()
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache_max_entries = cache_max_entries
        self.cache_max_bytes = cache_max_bytes
        self.batch_invariant = self.cache_path is not None if batch_invariant is None else batch_invariant
        self.ray = ray  # embeds on a Ray cluster instead of in this process; the bundle's bytes are the same

    @functools.cached_property
    def embedder(self) -> EmbeddingModel:
        return self._load_embedder()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        embedder: EmbeddingModel | None = None,
        cache_path: str | Path | None = None,
    ) -> Builder:
        """The build the settings describe; the embedder is loaded from them (at the first build) unless
        given, and the cache is `cache_path` or else `RAG_EMBEDDING_CACHE`."""
        from ..models import load_embedder

        ray = (
            RayEmbedding(settings.ray_address, settings, settings.ray_actors)
            if settings.ray_address
            else None
        )
        return cls(
            embedder or (lambda: load_embedder(settings)),
            settings.build_config(),
            cache_path=cache_path or settings.embedding_cache,
            cache_max_entries=settings.embedding_cache_max_entries,
            cache_max_bytes=settings.embedding_cache_max_bytes,
            ray=ray,
        )

    def load(self, corpus: str | Path, *, confined: bool = False) -> tuple[list[Document], LoadReport]:
        """The corpus's documents, with what was skipped and why (`confined`: links may not leave it)."""
        limits = Limits(max_file_bytes=self.config.max_file_bytes, max_pages=self.config.max_pages)
        return load_corpus(
            corpus, max_document_chars=self.config.max_document_chars, confined=confined, limits=limits
        )

    def build(
        self,
        documents: list[Document],
        out: str | Path,
        *,
        report: LoadReport | None = None,
        overwrite: bool = False,
        progress: bool | BuildProgress = False,
    ) -> BuildResult:
        """`progress`: True draws a tqdm bar per stage on stderr; a callable is told (stage, done, total)."""
        started = time.perf_counter()
        out = Path(out)
        if not documents:
            raise CorpusError("no documents to build from")
        if out.exists() and not overwrite:
            raise BundleError(f"{out} already exists (use --force to replace it)")
        bars = TqdmProgress() if progress is True else None
        report_progress: BuildProgress = bars or (progress if callable(progress) else _no_progress)
        cache = self._open_cache()
        try:
            with staged_dir(out) as tmp:
                seg = self._segment(documents, report_progress)
                vectors = self._embed(documents, seg, cache, report_progress)
                self._write_indexes(tmp, documents, seg, vectors, report_progress)
                manifest = self._manifest(tmp, documents, seg, report)
                write_json_atomic(tmp / MANIFEST_NAME, manifest_json(manifest))
                report_progress("index", 4, 4)
        finally:
            if bars is not None:
                bars.close()
            if cache is not None:
                cache.close()
        return BuildResult(
            path=out,
            manifest=manifest,
            seconds=time.perf_counter() - started,
            embed_seconds=vectors.seconds,
            embedded=cache.misses if cache else seg.n_units,
            cache_hits=cache.hits if cache else 0,
        )

    # ---- stages ------------------------------------------------------------------------------------------

    def _open_cache(self) -> EmbeddingCache | None:
        if self.cache_path is None:
            return None
        return EmbeddingCache(
            self.cache_path, max_entries=self.cache_max_entries, max_bytes=self.cache_max_bytes
        )

    def _segment(self, documents: list[Document], report_progress: BuildProgress) -> Segmentation:
        seg = segment_corpus(documents, self.config, lambda n: report_progress("segment", n, len(documents)))
        if seg.n_sentences == 0:
            raise CorpusError("the corpus has no sentences")
        _check_offsets(documents, seg)
        return seg

    def _embed(
        self,
        documents: list[Document],
        seg: Segmentation,
        cache: EmbeddingCache | None,
        report_progress: BuildProgress,
    ) -> _Vectors:
        """Unit vectors, and for passage/document units each sentence's own (evidence is picked by them)."""
        started = time.perf_counter()
        sentence_texts = (
            [
                documents[d].text[s:e]
                for d, s, e in zip(seg.sent_doc, seg.sent_start, seg.sent_end, strict=True)
            ]
            if self.config.unit != "sentence"
            else []
        )
        total = seg.n_units + len(sentence_texts)
        embed = self._embedding(cache, lambda done: report_progress("embed", done, total))
        report_progress("embed", 0, total)
        units = embed(unit_texts(documents, seg, with_title=self.config.unit_title))
        sentences = embed(sentence_texts) if sentence_texts else None
        return _Vectors(units, sentences, time.perf_counter() - started)

    def _embedding(
        self, cache: EmbeddingCache | None, embedded: Callable[[int], None]
    ) -> Callable[[list[str]], np.ndarray]:
        """A function embedding texts chunk by chunk (through the cache), telling `embedded` the running
        count across every call."""
        identity = self.embedder.identity
        namespace = embedder_namespace(self.embedder)
        batch_size = 1 if self.batch_invariant else self.config.batch_size
        count = 0

        def compute(batch: list[str]) -> np.ndarray:
            return self.embedder.encode(batch, kind="passage", batch_size=batch_size)

        ray = self.ray

        def on_ray(texts: list[str]) -> np.ndarray:
            # One Ray job for every text not in the cache: read before dispatch, written after.
            nonlocal count
            before = count

            def remote(missing: list[str]) -> np.ndarray:
                assert ray is not None
                return ray.encode(missing, identity.dim, batch_size, lambda n: embedded(before + n))

            vectors = (
                remote(texts)
                if cache is None
                else cache.encode(texts, namespace, identity.dim, remote, prefix=identity.passage_prefix)
            )
            count += len(texts)
            embedded(count)
            return vectors

        def embed(texts: list[str]) -> np.ndarray:
            nonlocal count
            parts = []
            for start in range(0, len(texts), CHUNK):
                chunk = texts[start : start + CHUNK]
                parts.append(
                    compute(chunk)
                    if cache is None
                    else cache.encode(chunk, namespace, identity.dim, compute, prefix=identity.passage_prefix)
                )
                count += len(chunk)
                embedded(count)
            return np.concatenate(parts) if parts else np.empty((0, identity.dim), np.float32)

        return on_ray if ray is not None else embed

    def _write_indexes(
        self,
        tmp: Path,
        documents: list[Document],
        seg: Segmentation,
        vectors: _Vectors,
        report_progress: BuildProgress,
    ) -> None:
        config = self.config
        if vectors.sentences is not None:
            np.save(tmp / SENTENCE_VECTORS_FILE, vectors.sentences)
        report_progress("index", 0, 4)
        write_store(tmp / STORE_FILE, documents, seg)
        report_progress("index", 1, 4)
        write_bm25(
            tmp / BM25_DIR,
            unit_texts(documents, seg, with_title=False),
            [d.title for d in documents],
            config.stemmer,
            seg.unit_doc,
        )
        report_progress("index", 2, 4)
        write_dense(tmp, vectors.units, config.dense_index, config.hnsw_m, config.hnsw_ef_construction)
        report_progress("index", 3, 4)

    def _manifest(
        self, tmp: Path, documents: list[Document], seg: Segmentation, report: LoadReport | None
    ) -> Manifest:
        files = {
            path.relative_to(tmp).as_posix(): FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
            for path in sorted(tmp.rglob("*"))
            if path.is_file()
        }
        return Manifest(
            format_version=FORMAT_VERSION,
            corpus_id=corpus_id(documents),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            embedding_model=ModelInfo(**dataclasses.asdict(self.embedder.identity)),
            build=self.config,
            counts={"documents": len(documents), "sentences": seg.n_sentences, "units": seg.n_units},
            skipped=report.skipped if report else [],
            warnings_count=len(report.warnings) if report else 0,
            software=_software(),
            files=files,
        )


def _check_offsets(documents: list[Document], seg: Segmentation, sample: int = 2000) -> None:
    rows = range(seg.n_sentences)
    picked = rows if seg.n_sentences <= sample else random.Random(0).sample(rows, sample)
    for i in picked:
        text = documents[seg.sent_doc[i]].text[seg.sent_start[i] : seg.sent_end[i]]
        if not text or text != text.strip():
            raise CorpusError(
                f"segmentation produced a bad span for document {documents[seg.sent_doc[i]].id!r}"
            )


def _software() -> dict[str, str]:
    versions = {}
    for package in ("rag", "numpy", "faiss-cpu", "sentence-transformers", "torch"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions
