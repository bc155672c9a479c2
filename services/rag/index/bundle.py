"""Load and verify an index bundle. Refuses, naming the problem, anything the manifest does not vouch for."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..config import DenseParams, Settings
from ..corpus import Document, Segmentation
from ..errors import BundleCorrupt, BundleNotFound, BundleVersionError, QueryError, UnknownDocument
from ..files import sha256_file, write_json_atomic
from .codes import RowSource, VectorRows
from .dense import DenseIndex
from .lexical import Bm25Index, Bm25Params
from .manifest import (
    ARTIFACT_INFO,
    BM25_DIR,
    DENSE_FILE,
    MANIFEST_NAME,
    READABLE_VERSIONS,
    SENTENCE_VECTORS_FILE,
    STORE_FILE,
    Evaluation,
    Manifest,
    is_index_file,
    manifest_json,
)
from .mapped import map_vectors
from .store import StoredDocuments, read_store
from .validate import check_files, check_segmentation

__all__ = ["Bundle", "parse_manifest", "read_manifest", "record_evaluation", "verify_bundle"]


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise BundleNotFound(f"bundle not found: {path}")
    if not manifest_path.is_file():
        raise BundleNotFound(f"{path} is not a bundle: no {MANIFEST_NAME}")
    return parse_manifest(manifest_path.read_bytes(), str(manifest_path))


def parse_manifest(data: bytes, where: str) -> Manifest:
    """A manifest from its bytes (a file, or an object being pulled); `where` names it in errors."""
    try:
        raw: Any = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleCorrupt(f"{where}: not valid JSON ({exc})") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise BundleVersionError(
            f"{where}: bundle format version {version!r} is not supported (this build reads {readable})"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleCorrupt(f"{where}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def verify_bundle(path: str | Path, manifest: Manifest, *, indexes: bool = True) -> None:
    """Every file the manifest lists exists with its SHA-256 (without `indexes`: every file but the BM25 and
    dense indexes, which may be absent), and the bundle holds nothing else (but the manifest and the pull's
    artifact.json) and no link out of it; the first difference is named."""
    path = Path(path)
    check_files(path, set(manifest.checked_paths()), {MANIFEST_NAME, ARTIFACT_INFO})
    for name in manifest.checked_paths():
        if not indexes and is_index_file(name):
            continue
        file = path / name
        if not file.is_file():
            raise BundleCorrupt(f"{path}: {name} is missing")
        entry = manifest.files[name]
        if file.stat().st_size != entry.bytes or sha256_file(file) != entry.sha256:
            raise BundleCorrupt(
                f"{path}: {name} does not match its checksum in the manifest (changed or damaged)"
            )


def record_evaluation(path: str | Path, evaluation: Evaluation) -> Manifest:
    """Write `evaluation` into the bundle's manifest (temp file + rename: readers see the old or the new
    manifest, never half of one). The manifest is not in its own `files` map, so every checksum still holds."""
    path = Path(path)
    manifest = read_manifest(path)
    verify_bundle(path, manifest)  # a score vouches for these exact files
    updated = manifest.model_copy(update={"evaluation": evaluation})
    write_json_atomic(path / MANIFEST_NAME, manifest_json(updated))
    return updated


def _sentence_vectors(
    path: Path, unit_vectors: VectorRows | None, n_sentences: int, dim: int
) -> VectorRows | None:
    """Passage/document bundles keep their sentences' vectors in a file of their own (mapped: evidence reads
    a few rows per query); in sentence bundles they are the unit vectors (None: not loaded)."""
    file = path / SENTENCE_VECTORS_FILE
    if not file.exists():
        return unit_vectors
    return map_vectors(file, n_sentences, dim)


class _NotLoaded:
    """An index of a bundle loaded without its indexes: any use names what was not loaded, and why."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        raise BundleCorrupt(
            f"this bundle's {self.what} was not loaded: its candidates come from a retrieval engine "
            "(RAG_RETRIEVAL_BACKEND=milvus)"
        )

    def __getitem__(self, ids: Any) -> np.ndarray:
        return self.__getattr__("rows")


@dataclass(frozen=True)
class _FieldIndex:
    """Metadata value → document rows, for filters applied inside retrieval."""

    values: dict[str, dict[str, np.ndarray]]


class Bundle:
    """A loaded bundle: documents, sentences, units, BM25 and dense indexes, metadata for filters."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        documents: StoredDocuments,
        seg: Segmentation,
        bm25: Bm25Index | None,
        dense: DenseIndex | None,
        sentence_vectors: VectorRows | None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.documents = documents
        self.seg = seg
        # None: loaded without its indexes (`has_indexes`); then `with_unit_vectors` gives the vectors.
        self.has_indexes = dense is not None
        self.bm25: Bm25Index = bm25 if bm25 is not None else _NotLoaded("BM25 index")  # type: ignore[assignment]
        self.dense: DenseIndex = dense if dense is not None else _NotLoaded("dense index")  # type: ignore[assignment]
        # Indexed by unit (sentence) id: `rows[ids]` is float32 [len(ids), dim], decoded for compressed kinds.
        self.unit_vectors: VectorRows = dense.vectors() if dense is not None else _NotLoaded("unit vectors")
        self.sentence_vectors: VectorRows = (
            sentence_vectors if sentence_vectors is not None else _NotLoaded("sentence vectors")
        )
        self._fields = self._index_fields(documents)

    def with_unit_vectors(self, rows: RowSource) -> Bundle:
        """This bundle, loaded without its indexes, with its unit vectors read from `rows` (the retrieval
        engine's copy); sentence bundles read their sentences' vectors there too."""
        other = copy.copy(self)
        other.unit_vectors = rows
        if isinstance(self.sentence_vectors, _NotLoaded):
            other.sentence_vectors = rows
        return other

    def with_bm25(self, params: Bm25Params) -> Bundle:
        """This bundle scored with other BM25 parameters: a new object sharing every array; this one is
        left as it is (the evaluation suites compare parameters on one loaded bundle)."""
        other = copy.copy(self)
        other.bm25 = Bm25Index(self.path / BM25_DIR, self.seg.unit_doc, params, n_docs=len(self.documents))
        return other

    @classmethod
    def from_settings(cls, path: str | Path, settings: Settings) -> Bundle:
        """The bundle at `path` as the server and the CLI load it: BM25 and dense search as configured, and
        neither loaded when Milvus serves the candidates."""
        return cls.load(
            path,
            bm25=settings.bm25_params(),
            dense=settings.dense_params(),
            threads=settings.effective_threads(),
            indexes=settings.retrieval_backend != "milvus",
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        bm25: Bm25Params | None = None,
        dense: DenseParams | None = None,
        threads: int = 1,
        verify: bool = True,
        indexes: bool = True,
    ) -> Bundle:
        """The bundle at `path`; without `indexes`, its BM25 and dense index are neither read nor required
        (a pod whose candidates come from Milvus: `rag artifacts pull --without-indexes` leaves them out)."""
        path = Path(path)
        manifest = read_manifest(path)
        if verify:
            verify_bundle(path, manifest, indexes=indexes)
        # Every array is checked (validate.py) before scipy, FAISS or an index into it can trust it.
        try:
            documents, seg = read_store(path / STORE_FILE)
            check_segmentation(seg, documents.text_lengths, manifest.counts)
            if not indexes:
                sentences = _sentence_vectors(path, None, seg.n_sentences, manifest.embedding_model.dim)
                return cls(path, manifest, documents, seg, None, None, sentences)
            lexical = Bm25Index(path / BM25_DIR, seg.unit_doc, bm25 or Bm25Params(), n_docs=len(documents))
            dense_index = DenseIndex(path, manifest.build.dense_index, dense, threads=threads)
            if dense_index.size != seg.n_units or dense_index.dim != manifest.embedding_model.dim:
                raise BundleCorrupt(
                    f"{DENSE_FILE}: {dense_index.size} vectors of {dense_index.dim} dimensions, expected {seg.n_units} "
                    f"of {manifest.embedding_model.dim}"
                )
            sentence_vectors = _sentence_vectors(
                path, dense_index.vectors(), seg.n_sentences, dense_index.dim
            )
        except BundleCorrupt as exc:
            raise BundleCorrupt(f"{path}: {exc}") from None
        except (OSError, ValueError, RuntimeError, KeyError, sqlite3.Error) as exc:
            raise BundleCorrupt(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
        return cls(path, manifest, documents, seg, lexical, dense_index, sentence_vectors)

    @staticmethod
    def _index_fields(documents: StoredDocuments) -> dict[str, dict[str, np.ndarray]]:
        rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, (doc_id, title, metadata) in enumerate(
            zip(documents.ids, documents.titles, documents.metadata, strict=True)
        ):
            rows["doc_id"][doc_id].append(i)
            rows["title"][title].append(i)
            for key, value in metadata.items():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str | int | float | bool):
                        rows[key][str(item)].append(i)
        return {k: {v: np.asarray(r, dtype=np.int64) for v, r in vals.items()} for k, vals in rows.items()}

    def document(self, doc_id: str) -> Document:
        rows = self._fields["doc_id"].get(doc_id)
        if rows is None:
            raise UnknownDocument(f"no document {doc_id!r} in this bundle (corpus {self.manifest.corpus_id})")
        return self.documents[int(rows[0])]

    def filter_fields(self) -> dict[str, int]:
        """Filterable fields and how many distinct values each has."""
        return {field: len(values) for field, values in self._fields.items()}

    def unit_mask(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """Boolean mask over units allowed by `filters`, or None for no filter.

        `{field: value}` or `{field: [values]}` keeps documents whose field equals (or, for list fields,
        contains) one of the values; `{field: {"not": value or [values]}}` excludes them. Fields combine with AND.
        """
        if not filters:
            return None
        allowed_docs = np.ones(len(self.documents), dtype=bool)
        for field, values, negate in self.filter_terms(filters):
            matched = np.zeros(len(self.documents), dtype=bool)
            matched[self.document_rows(field, values)] = True
            allowed_docs &= ~matched if negate else matched
        return allowed_docs[self.seg.unit_doc]

    def filter_terms(self, filters: dict[str, Any]) -> list[tuple[str, list[Any], bool]]:
        """`filters` checked and read as (field, values, excluded) terms: an unknown field or operator is a
        QueryError naming it. What every retrieval backend applies, each its own way."""
        terms = []
        for field, condition in filters.items():
            if field not in self._fields:
                raise QueryError(f"unknown filter field {field!r} (known: {', '.join(sorted(self._fields))})")
            negate = isinstance(condition, dict)
            if negate:
                if set(condition) != {"not"}:
                    raise QueryError(f"filter {field!r}: only {{'not': ...}} is supported as an operator")
                condition = condition["not"]
            terms.append((field, condition if isinstance(condition, list) else [condition], negate))
        return terms

    def document_rows(self, field: str, values: Any) -> np.ndarray:
        """Rows of the documents whose `field` equals (or, for a list field, contains) one of `values` (one
        value or a list), compared as strings; a field no document has matches none."""
        found = self._fields.get(field, {})
        rows = [found[str(v)] for v in (values if isinstance(values, list) else [values]) if str(v) in found]
        return np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)
