"""The dense index' vectors: a zero-copy view that stays valid after the index object is dropped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.index.dense import DenseIndex, write_dense

# In a child process: a crash there (reading unmapped memory) fails this test instead of ending the run.
KEEP_VECTORS_DROP_INDEX = textwrap.dedent(
    """
    import gc, sys
    import numpy as np
    from rag.index.dense import DenseIndex

    vectors = DenseIndex(sys.argv[1]).vectors()  # the index object is dropped at once
    gc.collect()
    churn = [np.ones(n, dtype=np.float32) for n in range(1000, 300000, 7000)]  # reuse the freed memory
    np.save(sys.argv[2], vectors)
    """
)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_vectors_outlive_the_index_object(kind: str, tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((4000, 64)).astype(np.float32)  # 1 MB: mmap'd storage
    write_dense(tmp_path / "dense.faiss", vectors, kind, hnsw_m=8, ef_construction=16)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            KEEP_VECTORS_DROP_INDEX,
            str(tmp_path / "dense.faiss"),
            str(tmp_path / "out.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "out.npy"), vectors)


def test_vectors_are_read_only(tmp_path: Path) -> None:
    write_dense(tmp_path / "dense.faiss", np.eye(3, dtype=np.float32), "flat", hnsw_m=8, ef_construction=16)
    view = DenseIndex(tmp_path / "dense.faiss").vectors()
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 2.0
