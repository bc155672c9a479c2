"""The dense index kinds: what each finds against exact search, filters, re-scoring, the zero-copy view of its
vectors, and that a worker maps the files instead of copying them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from rag.config import DenseKind, DenseParams
from rag.errors import BundleCorrupt
from rag.index.dense import COMPRESSED, DenseIndex, write_dense

KINDS: tuple[DenseKind, ...] = get_args(DenseKind)


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres: shaped like text embeddings, unlike uniform noise (where every
    compressed index is at its worst and no corpus lives)."""
    centres = np.random.default_rng(dim).standard_normal((40, dim)).astype(np.float32)  # queries share them
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, 40, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write(folder: Path, vectors: np.ndarray, kind: DenseKind) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_dense(folder, vectors, kind, hnsw_m=16, ef_construction=64)
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_finds_what_exact_search_finds(kind: DenseKind, tmp_path: Path) -> None:
    vectors = clustered(6000, 64)
    queries = clustered(50, 64, seed=1)
    index = DenseIndex(write(tmp_path, vectors, kind), kind, DenseParams(nprobe=16, rescore=10))
    found = 0
    for q in queries:
        ids, scores = index.search(q, 10)
        exact = np.argsort(-(vectors @ q), kind="stable")[:10]
        found += len(set(ids.tolist()) & set(exact.tolist()))
        # Scores are those of the vectors evidence reads back; for compressed kinds, decoded 8-bit codes
        # within 1e-2 of the exact cosines.
        np.testing.assert_allclose(scores, index.vectors()[ids] @ q, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(scores, vectors[ids] @ q, atol=1e-2 if kind in COMPRESSED else 1e-5)
        assert np.all(np.diff(scores) <= 1e-6)
    assert found / (10 * len(queries)) >= 0.9


def test_re_scoring_a_deeper_head_finds_what_the_codes_miss(tmp_path: Path) -> None:
    vectors = clustered(6000, 64)
    queries = clustered(50, 64, seed=1)
    write(tmp_path, vectors, "ivf-pq")

    def recall(rescore: int) -> float:
        index = DenseIndex(tmp_path, "ivf-pq", DenseParams(nprobe=16, rescore=rescore))
        found = sum(
            len(set(index.search(q, 10)[0].tolist()) & set(np.argsort(-(vectors @ q))[:10].tolist()))
            for q in queries
        )
        return found / (10 * len(queries))

    assert recall(10) >= recall(1) + 0.3  # 8-byte codes of 64 dimensions alone order the head poorly


@pytest.mark.parametrize("kind", KINDS)
def test_filters_restrict_the_search_itself(kind: DenseKind, tmp_path: Path) -> None:
    vectors = clustered(3000, 32)
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[::7] = True
    index = DenseIndex(write(tmp_path, vectors, kind), kind, DenseParams(nprobe=64))
    ids, _ = index.search(vectors[5], 20, allowed)
    assert len(ids) == 20 and allowed[ids].all()


@pytest.mark.parametrize("kind", ["ivf-pq", "hnsw-sq8"])
@pytest.mark.parametrize("n", [0, 1, 5, 300])
def test_compressed_kinds_build_on_tiny_corpora(kind: DenseKind, n: int, tmp_path: Path) -> None:
    vectors = clustered(max(n, 1), 16)[:n]
    index = DenseIndex(write(tmp_path, vectors, kind), kind)
    ids, _ = index.search(clustered(1, 16, seed=3)[0], 10)
    assert index.size == n and len(ids) == min(n, 10)


@pytest.mark.parametrize("kind", ["ivf-pq", "hnsw-sq8"])
def test_compressed_builds_are_byte_identical(kind: DenseKind, tmp_path: Path) -> None:
    vectors = clustered(3000, 32)
    a, b = write(tmp_path / "a", vectors, kind), write(tmp_path / "b", vectors, kind)
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in (p.name for p in a.iterdir()):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_ivf_pq_keeps_a_quarter_of_float32_beside_its_index(tmp_path: Path) -> None:
    """The rows it re-scores with are 8-bit codes: n × dim bytes, no float32 copy of the vectors."""
    vectors = clustered(3000, 64)
    folder = write(tmp_path, vectors, "ivf-pq")
    assert sorted(p.name for p in folder.iterdir()) == [
        "dense.faiss",
        "unit_code_ranges.npy",
        "unit_codes.npy",
    ]
    assert (folder / "unit_codes.npy").stat().st_size < vectors.nbytes / 4 + 256


@pytest.mark.parametrize("kind", ["ivf-pq", "hnsw-sq8"])
def test_compressed_bundles_of_the_float32_layout_still_load(kind: DenseKind, tmp_path: Path) -> None:
    """Built before 2026-12-03, they kept the exact vectors in unit_vectors.npy and re-score against them."""
    vectors = clustered(3000, 64)
    folder = write(tmp_path, vectors, kind)
    for name in ("unit_codes.npy", "unit_code_ranges.npy"):
        (folder / name).unlink(missing_ok=True)
    np.save(folder / "unit_vectors.npy", vectors)
    index = DenseIndex(folder, kind, DenseParams(nprobe=16))
    ids, scores = index.search(vectors[7], 10)
    np.testing.assert_allclose(scores, vectors[ids] @ vectors[7], rtol=1e-6, atol=1e-6)
    assert ids[0] == 7


def test_ivf_pq_without_its_codes_is_refused(tmp_path: Path) -> None:
    folder = write(tmp_path, clustered(500, 16), "ivf-pq")
    (folder / "unit_codes.npy").unlink()
    with pytest.raises(BundleCorrupt, match=r"unit_codes\.npy is missing"):
        DenseIndex(folder, "ivf-pq")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: np.save(f / "unit_codes.npy", np.zeros((500, 8), dtype=np.uint8)),
            r"expected uint8 \(500, 16\)",
        ),
        (lambda f: np.save(f / "unit_codes.npy", np.zeros((500, 16), dtype=np.int16)), "expected uint8"),
        (lambda f: np.save(f / "unit_code_ranges.npy", np.full(32, np.nan, np.float32)), "32 finite float32"),
        (lambda f: np.save(f / "unit_code_ranges.npy", np.zeros(31, np.float32)), "32 finite float32"),
    ],
    ids=["codes of another width", "codes not bytes", "ranges not finite", "ranges short"],
)
def test_damaged_codes_are_refused(damage, message: str, tmp_path: Path) -> None:
    folder = write(tmp_path, clustered(500, 16), "ivf-pq")
    damage(folder)
    with pytest.raises(BundleCorrupt, match=message):
        DenseIndex(folder, "ivf-pq")


def test_an_index_of_another_kind_than_the_manifest_says_is_refused(tmp_path: Path) -> None:
    write(tmp_path, clustered(100, 16), "flat")
    with pytest.raises(BundleCorrupt, match="a IndexFlatIP, but the manifest says a 'ivf-pq' index"):
        DenseIndex(tmp_path, "ivf-pq")


# In a child process: a crash there (reading unmapped memory) fails this test instead of ending the run.
KEEP_VECTORS_DROP_INDEX = textwrap.dedent(
    """
    import gc, sys
    from pathlib import Path
    import numpy as np
    from rag.index.dense import DenseIndex

    vectors = DenseIndex(Path(sys.argv[1]), sys.argv[3]).vectors()  # the index object is dropped at once
    gc.collect()
    churn = [np.ones(n, dtype=np.float32) for n in range(1000, 300000, 7000)]  # reuse the freed memory
    np.save(sys.argv[2], vectors[np.arange(len(vectors))])
    """
)


@pytest.mark.parametrize("kind", KINDS)
def test_vectors_outlive_the_index_object(kind: DenseKind, tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((4000, 64)).astype(np.float32)
    write(tmp_path / "b", vectors, kind)
    command = [
        sys.executable,
        "-c",
        KEEP_VECTORS_DROP_INDEX,
        str(tmp_path / "b"),
        str(tmp_path / "out.npy"),
        kind,
    ]
    child = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    # 8-bit codes decode to within half a step of the value: the range of a dimension / 510.
    step = (vectors.max(axis=0) - vectors.min(axis=0)) / 510 if kind in COMPRESSED else 0
    assert np.all(np.abs(np.load(tmp_path / "out.npy") - vectors) <= step + 1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_vectors_are_read_only(kind: DenseKind, tmp_path: Path) -> None:
    view = DenseIndex(write(tmp_path, clustered(300, 8), kind), kind).vectors()
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 2.0


# How much private memory loading costs, and which bundle files end up mapped.
LOAD_AND_SEARCH = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from rag.index.dense import DenseIndex

    def anon_kb():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon"))

    before = anon_kb()
    index = DenseIndex(Path(sys.argv[1]), sys.argv[2])
    for q in np.load(sys.argv[3]):
        index.search(q, 10)
    mapped = {line.split()[-1] for line in open("/proc/self/maps") if sys.argv[1] in line}
    print(json.dumps({"anon_kb": anon_kb() - before, "mapped": sorted(Path(m).name for m in mapped)}))
    """
)


@pytest.mark.parametrize("kind", KINDS)
def test_workers_map_the_index_instead_of_copying_it(kind: DenseKind, tmp_path: Path) -> None:
    """A worker's private memory does not grow with the index: the files are mapped, so a pod's workers share
    one copy through the page cache."""
    vectors = clustered(40_000, 128)  # 20 MB of float32
    folder = write(tmp_path / "b", vectors, kind)
    np.save(tmp_path / "q.npy", clustered(20, 128, seed=2))
    command = [sys.executable, "-c", LOAD_AND_SEARCH, str(folder), kind, str(tmp_path / "q.npy")]
    child = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    seen = json.loads(child.stdout.splitlines()[-1])
    assert "dense.faiss" in seen["mapped"]
    assert ("unit_codes.npy" in seen["mapped"]) == (kind == "ivf-pq")
    assert seen["anon_kb"] < 8 * 1024, seen  # the index files are 20+ MB
