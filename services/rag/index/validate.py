"""Structural checks of a bundle's contents, run at load before native code (scipy, FAISS, numpy indexing)
touches them.

Checksums prove the files are the ones the manifest lists; they say nothing about whether whoever wrote the
manifest wrote sound arrays. A bundle with BM25 indices out of range and a recomputed manifest once crashed
every worker in a loop (SIGSEGV). Each check raises BundleCorrupt naming the file and what is wrong, so
`/ready` can say it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..corpus import Segmentation
from ..errors import BundleCorrupt

__all__ = ["check_csr", "check_files", "check_segmentation", "check_vectors"]


def _fail(where: str, problem: str) -> BundleCorrupt:
    return BundleCorrupt(f"{where}: {problem}")


def _integers(where: str, array: np.ndarray) -> None:
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise _fail(where, f"expected a 1-d integer array, found {array.dtype} with shape {array.shape}")


def _within(where: str, array: np.ndarray, low: int, high: int) -> None:
    """Every value in [low, high)."""
    if len(array) and (int(array.min()) < low or int(array.max()) >= high):
        raise _fail(where, f"values outside [{low}, {high}): {int(array.min())}..{int(array.max())}")


def check_csr(
    where: str, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
) -> None:
    """A CSR matrix of non-negative counts: row pointers from 0 to nnz, never decreasing; columns in range."""
    rows, columns = shape
    _integers(f"{where} indices", indices)
    _integers(f"{where} indptr", indptr)
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.floating):
        raise _fail(
            f"{where} data", f"expected a 1-d float array, found {data.dtype} with shape {data.shape}"
        )
    if len(indptr) != rows + 1 or (rows >= 0 and len(indptr) and int(indptr[0]) != 0):
        raise _fail(f"{where} indptr", f"expected {rows + 1} row pointers starting at 0")
    if len(indices) != len(data) or int(indptr[-1]) != len(indices):
        raise _fail(
            where, f"{len(data)} values, {len(indices)} column indices, last row pointer {indptr[-1]}"
        )
    if np.any(np.diff(indptr) < 0):
        raise _fail(f"{where} indptr", "row pointers decrease")
    _within(f"{where} indices", indices, 0, columns)
    if not np.all(np.isfinite(data)) or np.any(data < 0):
        raise _fail(f"{where} data", "counts must be finite and non-negative")


def check_segmentation(seg: Segmentation, text_lengths: np.ndarray, counts: Mapping[str, int]) -> None:
    """Rows agree with the manifest's counts; every sentence lies inside its document's text (`text_lengths`,
    one per document); every unit is a non-empty run of its own document's sentences."""
    documents = text_lengths
    found = {"documents": len(documents), "sentences": seg.n_sentences, "units": seg.n_units}
    for name, number in found.items():
        if name in counts and counts[name] != number:
            raise _fail("store.sqlite", f"{number} {name}, the manifest says {counts[name]}")
    _within("store.sqlite sentences.doc_row", seg.sent_doc, 0, len(documents))
    _within("store.sqlite units.doc_row", seg.unit_doc, 0, len(documents))
    _within("store.sqlite units.first_sentence", seg.unit_first, 0, max(seg.n_sentences, 1))
    _within("store.sqlite units.last_sentence", seg.unit_last, 1, seg.n_sentences + 1)
    lengths = text_lengths
    if seg.n_sentences and (
        np.any(seg.sent_start < 0)
        or np.any(seg.sent_end < seg.sent_start)
        or np.any(seg.sent_end > lengths[seg.sent_doc])
    ):
        raise _fail("store.sqlite sentences", "a sentence's offsets fall outside its document's text")
    if seg.n_units and (
        np.any(seg.unit_last <= seg.unit_first)
        or np.any(seg.sent_doc[seg.unit_first] != seg.unit_doc)
        or np.any(seg.sent_doc[seg.unit_last - 1] != seg.unit_doc)
    ):
        raise _fail("store.sqlite units", "a unit is empty or spans sentences of another document")


def check_vectors(where: str, vectors: np.ndarray, rows: int, dim: int | None) -> None:
    if vectors.ndim != 2 or vectors.shape[0] != rows or (dim is not None and vectors.shape[1] != dim):
        raise _fail(where, f"shape {vectors.shape}, expected ({rows}, {dim if dim is not None else 'dim'})")
    if vectors.dtype != np.float32:
        raise _fail(where, f"dtype {vectors.dtype}, expected float32")
    # In slices: a memory-mapped file is checked without a temporary as large as itself.
    for start in range(0, rows, 65_536):
        if not np.all(np.isfinite(vectors[start : start + 65_536])):
            raise _fail(where, "vectors must be finite")


def check_files(path: Path, listed: set[str], allowed_unlisted: set[str]) -> None:
    """Nothing in the bundle the manifest does not vouch for, and nothing that links out of it."""
    root = path.resolve()
    for file in sorted(path.rglob("*")):
        name = file.relative_to(path).as_posix()
        if file.is_symlink() and not file.resolve().is_relative_to(root):
            raise _fail(str(path), f"{name} is a link to outside the bundle")
        if file.is_file() and name not in listed and name not in allowed_unlisted:
            raise _fail(str(path), f"{name} is not listed in the manifest")
