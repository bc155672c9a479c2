"""Build an index bundle: segment → embed → BM25 + FAISS + SQLite → manifest (checksums last).

The bundle is written into a temporary directory beside the destination and renamed into place, so a crash
never leaves a half-written bundle where a good one was.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from ..corpus import Document, LoadReport, Segmentation, corpus_id, segment_corpus, unit_texts
from ..errors import BundleError, CorpusError
from ..files import sha256_file, staged_dir, write_json_atomic
from ..models import EmbeddingModel
from .dense import write_dense
from .embedding_cache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, EmbeddingCache, embedder_namespace
from .lexical import write_bm25
from .manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ModelInfo,
    manifest_json,
)
from .progress import BuildProgress, TqdmProgress
from .store import write_store

__all__ = ["BuildResult", "build_bundle"]

log = logging.getLogger(__name__)

STORE_FILE = "store.sqlite"
DENSE_FILE = "dense.faiss"
SENTENCE_VECTORS_FILE = "sentence_vectors.npy"
BM25_DIR = "bm25"
_EMBED_CHUNK = 512  # texts per embedder call: the embed stage reports progress (and cache writes) per chunk


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: Manifest
    seconds: float
    embed_seconds: float
    embedded: int
    cache_hits: int


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


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def build_bundle(
    documents: list[Document],
    embedder: EmbeddingModel,
    out: str | Path,
    config: BuildConfig,
    *,
    report: LoadReport | None = None,
    cache_path: Path | None = None,
    cache_max_entries: int = DEFAULT_MAX_ENTRIES,
    cache_max_bytes: int = DEFAULT_MAX_BYTES,
    overwrite: bool = False,
    progress: bool | BuildProgress = False,
    batch_invariant: bool | None = None,
) -> BuildResult:
    """`progress`: True draws a tqdm bar per stage on stderr; a callable is told (stage, done, total).

    `batch_invariant` (default: on when `cache_path` is given) embeds each text on its own. A text's vector
    then depends on nothing but the text and the model: in a padded batch the padding length and the batch's
    shape change the kernels' summation order (and int8 dynamic quantisation scales activations per batch),
    so the same text embedded beside other texts differs in the last bits. With it, a rebuild that reuses
    cached vectors writes exactly the bytes of a cold build of the same corpus. On CPU it costs little
    (MiniLM: batch 1 ≈ batched throughput here, docs/PERF_NOTES); `config.batch_size` applies without it.
    """
    started = time.perf_counter()
    out = Path(out)
    if not documents:
        raise CorpusError("no documents to build from")
    if out.exists() and not overwrite:
        raise BundleError(f"{out} already exists (use --force to replace it)")
    if batch_invariant is None:
        batch_invariant = cache_path is not None
    batch_size = 1 if batch_invariant else config.batch_size
    bars = TqdmProgress() if progress is True else None
    report_progress: BuildProgress = bars or (progress if callable(progress) else _no_progress)
    cache = (
        EmbeddingCache(cache_path, max_entries=cache_max_entries, max_bytes=cache_max_bytes)
        if cache_path
        else None
    )
    try:
        with staged_dir(out) as tmp:
            seg = segment_corpus(documents, config, lambda n: report_progress("segment", n, len(documents)))
            if seg.n_sentences == 0:
                raise CorpusError("the corpus has no sentences")
            _check_offsets(documents, seg)
            identity = embedder.identity
            namespace = embedder_namespace(embedder)
            sentence_texts = (
                [
                    documents[d].text[s:e]
                    for d, s, e in zip(seg.sent_doc, seg.sent_start, seg.sent_end, strict=True)
                ]
                if config.unit != "sentence"
                else []
            )
            to_embed = seg.n_units + len(sentence_texts)
            embedded_so_far = 0

            def embed(texts: list[str]) -> np.ndarray:
                nonlocal embedded_so_far

                def compute(batch: list[str]) -> np.ndarray:
                    return embedder.encode(batch, kind="passage", batch_size=batch_size)

                parts = []
                for start in range(0, len(texts), _EMBED_CHUNK):
                    chunk = texts[start : start + _EMBED_CHUNK]
                    parts.append(
                        compute(chunk)
                        if cache is None
                        else cache.encode(
                            chunk, namespace, identity.dim, compute, prefix=identity.passage_prefix
                        )
                    )
                    embedded_so_far += len(chunk)
                    report_progress("embed", embedded_so_far, to_embed)
                return np.concatenate(parts) if parts else np.empty((0, identity.dim), np.float32)

            embed_started = time.perf_counter()
            report_progress("embed", 0, to_embed)
            unit_vectors = embed(unit_texts(documents, seg, with_title=config.unit_title))
            if sentence_texts:
                np.save(tmp / SENTENCE_VECTORS_FILE, embed(sentence_texts))
            embed_seconds = time.perf_counter() - embed_started

            report_progress("index", 0, 4)
            write_store(tmp / STORE_FILE, documents, seg)
            report_progress("index", 1, 4)
            write_bm25(
                tmp / BM25_DIR,
                unit_texts(documents, seg, with_title=False),
                [d.title for d in documents],
                config.stemmer,
            )
            report_progress("index", 2, 4)
            write_dense(
                tmp / DENSE_FILE, unit_vectors, config.dense_index, config.hnsw_m, config.hnsw_ef_construction
            )
            report_progress("index", 3, 4)

            files = {
                path.relative_to(tmp).as_posix(): FileEntry(
                    sha256=sha256_file(path), bytes=path.stat().st_size
                )
                for path in sorted(tmp.rglob("*"))
                if path.is_file()
            }
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                corpus_id=corpus_id(documents),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                embedding_model=ModelInfo(**dataclasses.asdict(identity)),
                build=config,
                counts={"documents": len(documents), "sentences": seg.n_sentences, "units": seg.n_units},
                skipped=report.skipped if report else [],
                warnings_count=len(report.warnings) if report else 0,
                software=_software(),
                files=files,
            )
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
    )
