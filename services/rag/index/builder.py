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
    iter_unit_texts,
    load_corpus,
    sample_unit_texts,
    segment_corpus,
    unit_texts,
)
from ..errors import BundleError, CorpusError
from ..files import sha256_file, staged_dir, write_json_atomic
from ..models import EmbeddingModel
from ..models.vocabulary import model_unread_share, unread_warning
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
from .ray_embedding import CHUNK, RayEmbedding, chunks
from .store import write_store

__all__ = ["BuildResult", "Builder"]

log = logging.getLogger(__name__)

# The unit vectors while the index is built from them, in the staging folder and removed before the manifest.
_UNIT_VECTORS_SCRATCH = "unit_vectors.building.npy"


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: Manifest
    seconds: float
    embed_seconds: float
    embedded: int
    cache_hits: int
    warnings: tuple[str, ...] = ()  # what the build found beyond the load's report (also added to it)


@dataclass(frozen=True)
class _Vectors:
    units: np.memmap  # the scratch file
    sentences: np.memmap | None  # passage/document units only: the bundle's file
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
        report = report if report is not None else LoadReport()
        warned = len(report.warnings)
        cache = self._open_cache()
        try:
            with staged_dir(out) as tmp:
                seg = self._segment(documents, report_progress)
                self._check_reading(documents, seg, report)
                vectors = self._embed(tmp, documents, seg, cache, report_progress)
                self._write_indexes(tmp, documents, seg, vectors, report_progress)
                embed_seconds = vectors.seconds
                del vectors  # unmapped before the scratch file goes (the index holds the unit vectors now)
                (tmp / _UNIT_VECTORS_SCRATCH).unlink()
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
            embed_seconds=embed_seconds,
            embedded=cache.misses if cache else seg.n_units,
            cache_hits=cache.hits if cache else 0,
            warnings=tuple(report.warnings[warned:]),
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

    def _check_reading(self, documents: list[Document], seg: Segmentation, report: LoadReport) -> None:
        """Warn when the embedder's vocabulary can only spell most of the corpus (`models/vocabulary.py`):
        the build succeeds, and its answers would be confident about text the models do not read."""
        texts = sample_unit_texts(documents, seg)
        share = model_unread_share(self.embedder, texts)
        if share is None:
            return
        warning = unread_warning("embedder", self.embedder.identity.name, share, len(texts))
        if warning is not None:
            report.warnings.append(warning)

    def _embed(
        self,
        tmp: Path,
        documents: list[Document],
        seg: Segmentation,
        cache: EmbeddingCache | None,
        report_progress: BuildProgress,
    ) -> _Vectors:
        """Unit vectors, and for passage/document units each sentence's own (evidence is picked by them).

        Both are written to files in the staging folder as they arrive, not gathered in memory: at 10M
        units of 384 dimensions they are 15 GB, which a build's head would otherwise hold (twice, while
        concatenating). The sentence vectors' file is the bundle's own; the units' is scratch, removed once
        the index holds them."""
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
        dim = self.embedder.identity.dim
        embed = _Embedding(
            self.embedder,
            cache,
            1 if self.batch_invariant else self.config.batch_size,
            self.ray,
            lambda done: report_progress("embed", done, total),
        )
        report_progress("embed", 0, total)
        units = _array_file(tmp / _UNIT_VECTORS_SCRATCH, seg.n_units, dim)
        embed(unit_texts(documents, seg, with_title=self.config.unit_title), units)
        sentences = None
        if sentence_texts:
            sentences = _array_file(tmp / SENTENCE_VECTORS_FILE, len(sentence_texts), dim)
            embed(sentence_texts, sentences)
        return _Vectors(units, sentences, time.perf_counter() - started)

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
            vectors.sentences.flush()  # the bundle's own file, checksummed by the manifest
        report_progress("index", 0, 4)
        write_store(tmp / STORE_FILE, documents, seg)
        report_progress("index", 1, 4)
        write_bm25(
            tmp / BM25_DIR,
            iter_unit_texts(documents, seg, with_title=False),
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


class _Embedding:
    """Embeds texts into the rows of an array, chunk by chunk (`CHUNK`), through the cache when there is one,
    in this process or on Ray; `embedded` is told the running count across every call."""

    def __init__(
        self,
        embedder: EmbeddingModel,
        cache: EmbeddingCache | None,
        batch_size: int,
        ray: RayEmbedding | None,
        embedded: Callable[[int], None],
    ) -> None:
        self.embedder, self.cache, self.batch_size, self.ray = embedder, cache, batch_size, ray
        self.embedded = embedded
        self.namespace = embedder_namespace(embedder)
        self.dim = embedder.identity.dim
        self.prefix = embedder.identity.passage_prefix
        self.count = 0

    def __call__(self, texts: list[str], out: np.ndarray) -> None:
        if self.ray is None:
            self._here(texts, out)
        else:
            self._on_ray(self.ray, texts, out)

    def _compute(self, batch: list[str]) -> np.ndarray:
        return self.embedder.encode(batch, kind="passage", batch_size=self.batch_size)

    def _cached(self, chunk: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        assert self.cache is not None
        return self.cache.encode(chunk, self.namespace, self.dim, compute, prefix=self.prefix)

    def _here(self, texts: list[str], out: np.ndarray) -> None:
        for start, chunk in chunks(texts):
            out[start : start + len(chunk)] = (
                self._compute(chunk) if self.cache is None else self._cached(chunk, self._compute)
            )
            self.count += len(chunk)
            self.embedded(self.count)

    def _on_ray(self, ray: RayEmbedding, texts: list[str], out: np.ndarray) -> None:
        """One Ray job for every text the cache lacks (asked before dispatch; no vector is read), each vector
        written to its text's first row as it arrives; then the cache fills the rest chunk by chunk, storing
        the new vectors."""
        before = self.count
        cache = self.cache
        sent = (
            np.arange(len(texts))
            if cache is None
            else np.asarray(cache.uncached(texts, self.namespace, self.dim, prefix=self.prefix), np.int64)
        )

        def write(offset: int, vectors: np.ndarray) -> None:
            out[sent[offset : offset + len(vectors)]] = vectors

        to_send = texts if cache is None else [texts[i] for i in sent]
        ray.encode(to_send, self.dim, self.batch_size, lambda n: self.embedded(before + n), write)
        if cache is not None:
            for start, chunk in chunks(texts):
                rows = sent[np.searchsorted(sent, start) : np.searchsorted(sent, start + CHUNK)]
                compute = functools.partial(self._rows_or_compute, out, rows, [texts[i] for i in rows])
                out[start : start + len(chunk)] = self._cached(chunk, compute)
        self.count += len(texts)
        self.embedded(self.count)

    def _rows_or_compute(
        self, out: np.ndarray, rows: np.ndarray, sent: list[str], missing: list[str]
    ) -> np.ndarray:
        """What the cache lacks in a chunk: the rows Ray just wrote there. Unless a vector the lookup found
        was evicted since (a cache smaller than the corpus): embedded here then. With a cache a build embeds
        each text alone (`batch_invariant`'s default), so the bytes are the same either way."""
        return out[rows] if missing == sent else self._compute(missing)


def _array_file(path: Path, rows: int, dim: int) -> np.memmap:
    """A float32 [rows, dim] array backed by a new `.npy` file (what `np.save` writes, once filled)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))


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
