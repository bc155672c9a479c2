"""Dense index over unit vectors (FAISS inner product on L2-normalised vectors = cosine), memory-mapped.

Every kind is read with FAISS' zero-copy mmap flag, so the workers of a pod share one copy of it through the
page cache instead of each holding its own. The compressed kinds hold no float32 vectors: `hnsw-sq8` searches
and returns its own 8-bit codes; `ivf-pq` keeps 8-bit codes beside its product-quantised ones (codes.py,
also mapped): the PQ scores choose a head of candidates, the 8-bit codes order it (docs/BENCHMARKS.md, "Scale").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DenseKind, DenseParams
from ..errors import BundleCorrupt
from .codes import CodedVectors, DecodedRows, VectorRows, write_codes
from .manifest import DENSE_FILE, UNIT_CODES_FILE, UNIT_VECTORS_FILE
from .mapped import map_vectors

__all__ = ["COMPRESSED", "DenseIndex", "IvfPqShape", "write_dense"]

COMPRESSED: frozenset[str] = frozenset({"hnsw-sq8", "ivf-pq"})
# The FAISS class each kind is written as: a file of another class is refused at load.
_CLASS = {"flat": "IndexFlatIP", "hnsw": "IndexHNSWFlat", "hnsw-sq8": "IndexHNSWSQ", "ivf-pq": "IndexIVFPQ"}
_TRAINING_ROWS = 100_000  # k-means samples for the IVF lists and PQ codebooks: more costs time, not recall


def _faiss() -> Any:
    import faiss

    return faiss


@contextmanager
def _one_thread() -> Iterator[None]:
    # HNSW insertion order and k-means (so the file's bytes) must not depend on thread scheduling.
    faiss = _faiss()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


class IvfPqShape:
    """An `ivf-pq` index' geometry for `n` vectors of `dim`: about √n inverted lists (at least 39 training
    vectors each, FAISS' floor), codes of dim/8 bytes, 8 bits per sub-quantiser (fewer for tiny corpora)."""

    def __init__(self, n: int, dim: int, lists: int = 0, code_bytes: int = 0) -> None:
        self.lists = lists or max(1, min(round(math.sqrt(n)), n // 39))
        self.code_bytes = code_bytes or max(d for d in range(1, max(dim // 8, 1) + 1) if dim % d == 0)
        self.bits = 8 if n >= 256 else max(1, int(math.log2(max(n, 2))))

    def index(self, dim: int) -> Any:
        faiss = _faiss()
        quantizer = faiss.IndexFlatIP(dim)
        return faiss.IndexIVFPQ(
            quantizer, dim, self.lists, self.code_bytes, self.bits, faiss.METRIC_INNER_PRODUCT
        )


def write_dense(
    folder: Path, vectors: np.ndarray, kind: DenseKind, hnsw_m: int, ef_construction: int
) -> None:
    """`dense.faiss` (and, for `ivf-pq`, the 8-bit codes it re-scores with) in `folder`."""
    faiss = _faiss()
    dim = vectors.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    elif kind == "hnsw-sq8":
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf-pq":
        index = IvfPqShape(len(vectors), dim).index(dim)
    else:
        index = faiss.IndexFlatIP(dim)
    if kind.startswith("hnsw"):
        index.hnsw.efConstruction = ef_construction
    with _one_thread():
        if not index.is_trained and len(vectors):
            index.train(_training_sample(vectors, index))
        if len(vectors) and index.is_trained:
            index.add(vectors)
    faiss.write_index(index, str(folder / DENSE_FILE))
    if kind == "ivf-pq":
        write_codes(folder, vectors)


def _training_sample(vectors: np.ndarray, index: Any) -> np.ndarray:
    sample = vectors[:: max(1, len(vectors) // _TRAINING_ROWS)]
    codebook = 2 ** int(index.pq.nbits) if hasattr(index, "pq") else 1
    # A one-vector corpus still needs two points for a 1-bit codebook: repeat it.
    return np.resize(sample, (max(len(sample), codebook), sample.shape[1]))


class DenseIndex:
    def __init__(
        self, folder: Path, kind: DenseKind, params: DenseParams | None = None, threads: int = 1
    ) -> None:
        faiss = _faiss()
        faiss.omp_set_num_threads(threads)
        # Zero-copy: FAISS versions without the flag read the whole index into memory instead.
        self._index = faiss.read_index(str(folder / DENSE_FILE), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
        found = type(faiss.downcast_index(self._index)).__name__
        if found != _CLASS[kind]:
            raise BundleCorrupt(f"{DENSE_FILE}: a {found}, but the manifest says a {kind!r} index")
        self.kind = kind
        self.dim = int(self._index.d)
        self.size = int(self._index.ntotal)
        self.params = params or DenseParams()
        self._rescoring = self._rescoring_rows(folder)

    def _rescoring_rows(self, folder: Path) -> VectorRows | None:
        """What the head of a compressed search is re-ordered with, if anything."""
        if (folder / UNIT_VECTORS_FILE).exists() and self.kind in COMPRESSED:  # built before 2026-12-03
            return map_vectors(folder / UNIT_VECTORS_FILE, self.size, self.dim)
        if self.kind == "ivf-pq":
            if not (folder / UNIT_CODES_FILE).exists():
                raise BundleCorrupt(f"{UNIT_CODES_FILE} is missing: an ivf-pq index re-scores with it")
            return CodedVectors(folder, self.size, self.dim)
        return None  # flat and hnsw are exact; hnsw-sq8 already searched with its codes

    def vectors(self) -> VectorRows:
        """All unit vectors, indexed by unit id: for `flat` and `hnsw` a read-only, zero-copy float32 view of
        the index' own storage; for compressed kinds the rows they re-score with, decoded on request.

        The view keeps the index alive: a bare `rev_swig_ptr` view did not, so vectors kept past their
        index read freed memory (seen as garbage in a test; a segfault once the allocator unmaps it)."""
        if self._rescoring is not None:
            return self._rescoring
        if self.kind == "hnsw-sq8":
            return DecodedRows(self._index, self.size, self.dim)
        faiss = _faiss()
        flat = faiss.downcast_index(self._index.storage) if self.kind == "hnsw" else self._index
        if self.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        address = faiss.rev_swig_ptr(flat.get_xb(), self.size * self.dim).ctypes.data
        return np.asarray(_Storage(self._index, address, (self.size, self.dim)))

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(unit ids, scores) of the k best units; `allowed` (bool mask) restricts the search itself."""
        k = min(k, self.size)
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = query.reshape(1, -1).astype(np.float32)
        head = min(k * self.params.rescore, self.size) if self._rescoring is not None else k
        scores, ids = self._index.search(query, head, params=self._search_params(allowed))
        keep = ids[0] >= 0
        ids, scores = ids[0][keep].astype(np.int64), scores[0][keep]
        if self._rescoring is None:
            return ids, scores
        ids = np.sort(ids)  # the rows are read in file order
        rescored = self._rescoring[ids] @ query[0]
        order = np.lexsort((ids, -rescored))[:k]
        return ids[order], rescored[order]

    def _search_params(self, allowed: np.ndarray | None) -> Any:
        faiss = _faiss()
        selector = (
            None if allowed is None else faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
        )
        if self.kind.startswith("hnsw"):
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.params.ef_search)
        if self.kind == "ivf-pq":
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.params.nprobe)
        return faiss.SearchParameters(sel=selector)


class _Storage:
    """Lends an index' float32 storage to numpy: the array's base is this object, which holds the index."""

    def __init__(self, index: Any, address: int, shape: tuple[int, int]) -> None:
        self._index = index
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": "<f4", "version": 3}
