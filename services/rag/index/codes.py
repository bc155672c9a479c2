"""Unit vectors kept as 8-bit scalar codes: what a compressed dense index re-scores its head with, and what
evidence and MMR read back, at a quarter of float32's bytes.

FAISS encodes and decodes them (`ScalarQuantizer`, QT_8bit: per dimension, 256 steps between the corpus'
minimum and maximum), so the bundle stores only the codes and the quantiser's trained ranges. At 5M units of
384 dimensions that is 1.9 GB instead of 7.7 GB of exact vectors, which is what puts a 5M-unit pod under
4 GB (docs/BENCHMARKS.md, "Scale"); the cosines move by about 1e-3, below the gaps re-scoring decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import BundleCorrupt
from .manifest import UNIT_CODE_RANGES_FILE, UNIT_CODES_FILE
from .mapped import map_npy, release

__all__ = ["CodedVectors", "DecodedRows", "RowSource", "VectorRows", "write_codes"]

_CHUNK = 65_536  # rows encoded at a time: the codes are written without a second full-size temporary


def _quantizer(dim: int) -> Any:
    import faiss

    return faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)


def write_codes(folder: Path, vectors: np.ndarray) -> None:
    """`unit_codes.npy` (uint8 [n, dim]) and `unit_code_ranges.npy` (the quantiser's ranges) in `folder`."""
    import faiss

    n, dim = vectors.shape
    quantizer = _quantizer(dim)
    if n:
        quantizer.train(vectors)  # min and max of every row: no vector falls outside and is clipped
        ranges = faiss.vector_to_array(quantizer.trained).astype(np.float32)
    else:
        ranges = np.zeros(2 * dim, dtype=np.float32)
    codes = np.lib.format.open_memmap(folder / UNIT_CODES_FILE, mode="w+", dtype=np.uint8, shape=(n, dim))
    for start in range(0, n, _CHUNK):
        codes[start : start + _CHUNK] = quantizer.compute_codes(vectors[start : start + _CHUNK])
    codes.flush()
    del codes
    np.save(folder / UNIT_CODE_RANGES_FILE, ranges)


class CodedVectors:
    """The unit vectors of a bundle read back from their codes: `rows[ids]` decodes those rows to float32.
    The codes are memory-mapped for random reads; a query decodes the few hundred rows it needs."""

    def __init__(self, folder: Path, rows: int, dim: int) -> None:
        import faiss

        self._codes = map_npy(folder / UNIT_CODES_FILE, random_access=True)
        ranges = np.load(folder / UNIT_CODE_RANGES_FILE, allow_pickle=False)
        if self._codes.dtype != np.uint8 or self._codes.shape != (rows, dim):
            raise BundleCorrupt(
                f"{UNIT_CODES_FILE}: {self._codes.dtype} {self._codes.shape}, expected uint8 ({rows}, {dim})"
            )
        if ranges.dtype != np.float32 or ranges.shape != (2 * dim,) or not np.all(np.isfinite(ranges)):
            raise BundleCorrupt(f"{UNIT_CODE_RANGES_FILE}: expected {2 * dim} finite float32 values")
        release(self._codes)
        self._quantizer = _quantizer(dim)
        faiss.copy_array_to_vector(ranges, self._quantizer.trained)
        self.shape = (rows, dim)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, ids: Any) -> np.ndarray:
        codes = np.ascontiguousarray(self._codes[ids])
        decoded: np.ndarray = self._quantizer.decode(codes.reshape(-1, self.shape[1]))
        return decoded.reshape(codes.shape)


class DecodedRows:
    """The vectors an `hnsw-sq8` index holds (its own 8-bit codes), decoded by FAISS row by row on request."""

    def __init__(self, index: Any, rows: int, dim: int) -> None:
        import faiss

        self._storage = faiss.downcast_index(index.storage)
        self._index = index  # the storage belongs to the index: keep it alive
        self.shape = (rows, dim)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, ids: Any) -> np.ndarray:
        keys = np.asarray(ids, dtype=np.int64)
        if keys.size and (int(keys.min()) < 0 or int(keys.max()) >= self.shape[0]):
            raise IndexError(f"rows outside [0, {self.shape[0]})")  # FAISS would read past its codes
        decoded: np.ndarray = self._storage.reconstruct_batch(np.ascontiguousarray(keys.reshape(-1)))
        return decoded.reshape((*keys.shape, self.shape[1]))


class RowSource(Protocol):
    """Rows kept outside the bundle (a retrieval engine's copy of the unit vectors), read on request."""

    def __getitem__(self, ids: Any) -> np.ndarray: ...


# What evidence, MMR and re-scoring index with unit ids: float32 rows, or rows decoded from codes on request.
VectorRows = np.ndarray | CodedVectors | DecodedRows | RowSource
