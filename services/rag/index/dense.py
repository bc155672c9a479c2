"""Dense index over unit vectors (FAISS inner product on L2-normalised vectors = cosine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DenseIndex", "write_dense"]


def _faiss() -> Any:
    import faiss

    return faiss


def write_dense(path: Path, vectors: np.ndarray, kind: str, hnsw_m: int, ef_construction: int) -> None:
    faiss = _faiss()
    dim = vectors.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        # One thread: HNSW insertion order (and so the file's bytes) must not depend on scheduling.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            index.add(vectors)
        finally:
            faiss.omp_set_num_threads(threads)
    else:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
    faiss.write_index(index, str(path))


class DenseIndex:
    def __init__(self, path: Path, ef_search: int = 64, threads: int = 1) -> None:
        faiss = _faiss()
        faiss.omp_set_num_threads(threads)
        self._index = faiss.read_index(str(path))
        self.dim = int(self._index.d)
        self.size = int(self._index.ntotal)
        self.is_hnsw = hasattr(self._index, "hnsw")
        self._ef_search = ef_search
        if self.is_hnsw:
            self._index.hnsw.efSearch = ef_search

    def vectors(self) -> np.ndarray:
        """All unit vectors as a read-only, zero-copy view of the index' own storage (float32 [size, dim]).

        The view keeps the index alive: a bare `rev_swig_ptr` view did not, so vectors kept past their
        index read freed memory (seen as garbage in a test; a segfault once the allocator unmaps it)."""
        faiss = _faiss()
        flat = faiss.downcast_index(self._index.storage) if self.is_hnsw else self._index
        if self.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        address = faiss.rev_swig_ptr(flat.get_xb(), self.size * self.dim).ctypes.data
        return np.asarray(_Storage(self._index, address, (self.size, self.dim)))

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(unit ids, scores) of the k best units; `allowed` (bool mask) restricts the search itself."""
        faiss = _faiss()
        k = min(k, self.size)
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
            params = (
                faiss.SearchParametersHNSW(sel=selector, efSearch=self._ef_search)
                if self.is_hnsw
                else faiss.SearchParameters(sel=selector)
            )
        scores, ids = self._index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]


class _Storage:
    """Lends an index' float32 storage to numpy: the array's base is this object, which holds the index."""

    def __init__(self, index: Any, address: int, shape: tuple[int, int]) -> None:
        self._index = index
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": "<f4", "version": 3}
