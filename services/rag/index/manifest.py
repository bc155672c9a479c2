"""manifest.json: what a bundle is, what built it, and the SHA-256 of every file in it."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..config import BuildConfig
from ..errors import BundleCorrupt

__all__ = [
    "BM25_DIR",
    "DENSE_FILE",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "READABLE_VERSIONS",
    "SENTENCE_VECTORS_FILE",
    "STORE_FILE",
    "UNIT_CODES_FILE",
    "UNIT_CODE_RANGES_FILE",
    "UNIT_VECTORS_FILE",
    "Evaluation",
    "FileEntry",
    "Manifest",
    "ModelInfo",
    "manifest_json",
]

# 2: BM25 postings term-major and memory-mapped (bm25/*_offsets.npy …), dense kinds hnsw-sq8 and ivf-pq.
# Version 1 bundles still load (their BM25 counts are converted in memory); a version 1 reader refuses 2.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
ARTIFACT_INFO = "artifact.json"  # written by `rag artifacts pull` beside the manifest, not listed in it

# The files a bundle holds, written by the Builder and read by Bundle.load.
STORE_FILE = "store.sqlite"
DENSE_FILE = "dense.faiss"
SENTENCE_VECTORS_FILE = "sentence_vectors.npy"  # passage/document units only: their sentences' vectors
UNIT_CODES_FILE = "unit_codes.npy"  # ivf-pq only: 8-bit codes of the unit vectors, which re-score its head
UNIT_CODE_RANGES_FILE = "unit_code_ranges.npy"  # ivf-pq only: the ranges those codes decode with
# Compressed bundles built before 2026-12-03 re-score against float32 vectors; they still load.
UNIT_VECTORS_FILE = "unit_vectors.npy"
BM25_DIR = "bm25"
# What retrieval searches: a pod whose candidates come from a retrieval engine (RAG_RETRIEVAL_BACKEND=milvus)
# neither pulls nor loads these (`rag artifacts pull --without-indexes`).
_INDEX_FILES = frozenset({DENSE_FILE, UNIT_CODES_FILE, UNIT_CODE_RANGES_FILE, UNIT_VECTORS_FILE})


def is_index_file(name: str) -> bool:
    """A file of the bundle's own BM25 or dense index (a path as the manifest lists it)."""
    return name in _INDEX_FILES or name.startswith(f"{BM25_DIR}/")


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sha256: str
    bytes: int


class ModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    fingerprint: str
    dim: int
    query_prefix: str
    passage_prefix: str
    max_seq_length: int
    revision: str | None = None


class Evaluation(BaseModel):
    """Retrieval quality of the bundle on an evaluation set (`rag eval --bundle … --record`): what CI's quality
    gate compares a new build against. Recorded after the build, so it is not covered by `files`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    eval_set: str = Field(description="sha256 of the evaluation set's queries and judgements")
    queries: int = Field(ge=1)
    metrics: dict[str, float] = Field(description="e.g. ndcg@10, recall@10, recall@100 (0..1)")
    measured_at: str


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int
    corpus_id: str
    created_at: str
    embedding_model: ModelInfo
    build: BuildConfig
    counts: dict[str, int]
    skipped: list[dict[str, str]] = Field(default_factory=list)
    warnings_count: int = 0
    software: dict[str, str] = Field(default_factory=dict)
    files: dict[str, FileEntry]
    evaluation: Evaluation | None = None

    def checked_paths(self) -> list[str]:
        """File names, refusing any that could escape the bundle directory."""
        for name in self.files:
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or name.startswith("\\") or ":" in name:
                raise BundleCorrupt(f"manifest lists an unsafe path: {name!r}")
        return sorted(self.files)


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    """The manifest as written to disk. `evaluation` is left out while unset, so a bundle that was never
    evaluated has the same manifest keys as before the field existed (older readers forbid unknown keys)."""
    return manifest.model_dump(mode="json", exclude={"evaluation"} if manifest.evaluation is None else None)
