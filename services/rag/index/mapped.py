"""A bundle's arrays read through a read-only memory map instead of copied into each worker.

The workers of a pod then share one copy through the page cache, and a worker's resident set holds only the
pages its queries touched. Used for the exact vectors beside a compressed dense index (random reads of a few
hundred rows per query) and the sentence vectors of passage/document bundles.
"""

from __future__ import annotations

import math
import mmap
import os
from pathlib import Path

import numpy as np

from ..errors import BundleCorrupt
from .validate import check_vectors

__all__ = ["map_npy", "map_vectors", "release"]


def map_npy(path: Path, *, random_access: bool = False) -> np.ndarray:
    """The array saved at `path` (`np.save`), mapped read-only. `random_access` turns off the kernel's
    read-ahead: without it, each row read pulls in its neighbours too (128 KiB per fault), and a worker's
    resident set grows towards the whole file after a few thousand queries."""
    with open(path, "rb") as file:
        try:
            version = np.lib.format.read_magic(file)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(file)
        except ValueError as exc:
            raise BundleCorrupt(f"{path.name}: not a NumPy array file ({exc})") from None
        if dtype.hasobject or fortran_order:
            raise BundleCorrupt(f"{path.name}: holds objects or Fortran order; a plain C array was expected")
        count = math.prod(shape)
        offset = file.tell()
        if offset + count * dtype.itemsize != os.fstat(file.fileno()).st_size:
            raise BundleCorrupt(f"{path.name}: its size does not match its header's shape {shape}")
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    if random_access:
        mapping.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).reshape(shape)


def release(array: np.ndarray) -> None:
    """Drop a mapped array's pages from this process' resident set (they stay in the page cache): after a
    check that read the whole file at load, so the worker does not carry it all as its own."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if isinstance(base, mmap.mmap):
        base.madvise(mmap.MADV_DONTNEED)


def map_vectors(path: Path, rows: int, dim: int) -> np.ndarray:
    """A float32 [rows, dim] vector file, mapped for random reads and checked; the check's pages are then
    dropped from the resident set (queries read a few hundred rows each)."""
    vectors = map_npy(path, random_access=True)
    check_vectors(path.name, vectors, rows, dim)
    release(vectors)
    return vectors
