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
from .embedding_cache import EmbeddingCache
from .lexical import write_bm25
from .manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ModelInfo,
    manifest_json,
)
from .store import write_store

__all__ = ["BuildResult", "build_bundle"]

log = logging.getLogger(__name__)

STORE_FILE = "store.sqlite"
DENSE_FILE = "dense.faiss"
SENTENCE_VECTORS_FILE = "sentence_vectors.npy"
BM25_DIR = "bm25"


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


def build_bundle(
    documents: list[Document],
    embedder: EmbeddingModel,
    out: str | Path,
    config: BuildConfig,
    *,
    report: LoadReport | None = None,
    cache_path: Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildResult:
    started = time.perf_counter()
    out = Path(out)
    if not documents:
        raise CorpusError("no documents to build from")
    if out.exists() and not overwrite:
        raise BundleError(f"{out} already exists (use --force to replace it)")
    cache = EmbeddingCache(cache_path) if cache_path else None
    try:
        with staged_dir(out) as tmp:
            seg = segment_corpus(documents, config)
            if seg.n_sentences == 0:
                raise CorpusError("the corpus has no sentences")
            _check_offsets(documents, seg)
            identity = embedder.identity

            def embed(texts: list[str]) -> np.ndarray:
                def compute(batch: list[str]) -> np.ndarray:
                    return embedder.encode(
                        batch, kind="passage", batch_size=config.batch_size, progress=progress
                    )

                if cache is None:
                    return compute(texts)
                namespace = f"{identity.fingerprint}|{identity.passage_prefix}|{identity.max_seq_length}"
                return cache.encode(texts, namespace, identity.dim, compute)

            embed_started = time.perf_counter()
            unit_vectors = embed(unit_texts(documents, seg, with_title=config.unit_title))
            if config.unit != "sentence":
                sentence_texts = [
                    documents[d].text[s:e]
                    for d, s, e in zip(seg.sent_doc, seg.sent_start, seg.sent_end, strict=True)
                ]
                np.save(tmp / SENTENCE_VECTORS_FILE, embed(sentence_texts))
            embed_seconds = time.perf_counter() - embed_started

            write_store(tmp / STORE_FILE, documents, seg)
            write_bm25(
                tmp / BM25_DIR,
                unit_texts(documents, seg, with_title=False),
                [d.title for d in documents],
                config.stemmer,
            )
            write_dense(
                tmp / DENSE_FILE, unit_vectors, config.dense_index, config.hnsw_m, config.hnsw_ef_construction
            )

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
    finally:
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
