"""Bundles whose checksums match but whose contents are wrong (the manifest recomputed after tampering): each is
refused at load, naming the problem, before native code touches the arrays. Served, such a bundle leaves the
workers up and `/ready` 503 with the reason (it once crashed them in a loop)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from rag_testkit.launch import make_run
from rag_testkit.tools import wait_for

from rag.errors import BundleCorrupt
from rag.files import sha256_file
from rag.index import Bundle


def tampered(sample_bundle: Path, folder: Path, change: Callable[[Path], None]) -> Path:
    """A copy of the bundle changed by `change`, its manifest rehashed to match, new files listed (as an
    attacker would)."""
    bundle = folder / "bundle"
    shutil.copytree(sample_bundle, bundle)
    change(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for file in bundle.rglob("*"):
        name = file.relative_to(bundle).as_posix()
        if file.is_file() and name != "manifest.json":
            manifest["files"][name] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def _set_bm25(bundle: Path, name: str, row: int, value: float) -> None:
    path = bundle / "bm25" / name
    array = np.load(path)
    array[row] = value
    np.save(path, array)


def bm25_indices_out_of_range(bundle: Path) -> None:
    _set_bm25(bundle, "body_units.npy", len(np.load(bundle / "bm25" / "body_units.npy")) // 2, 10**8)


def bm25_title_on_a_missing_document(bundle: Path) -> None:
    _set_bm25(bundle, "title_docs.npy", 0, 10**6)


def bm25_negative_length(bundle: Path) -> None:
    _set_bm25(bundle, "unit_length.npy", 0, -1)


def bm25_frequency_past_the_units(bundle: Path) -> None:
    _set_bm25(bundle, "df_titled.npy", 0, 10**9)


def bm25_header_lies_about_its_shape(bundle: Path) -> None:
    path = bundle / "bm25" / "body_tf.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 8])  # the header's shape no longer matches the bytes


def dense_index_of_another_kind(bundle: Path) -> None:
    import faiss

    flat = faiss.read_index(str(bundle / "dense.faiss"))
    hnsw = faiss.IndexHNSWFlat(flat.d, 8, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d).copy())
    faiss.write_index(hnsw, str(bundle / "dense.faiss"))


def sentence_past_its_document(bundle: Path) -> None:
    with sqlite3.connect(bundle / "store.sqlite") as con:
        con.execute("UPDATE sentences SET char_end = char_end + 100000 WHERE row = 1")


def unit_on_a_missing_document(bundle: Path) -> None:
    with sqlite3.connect(bundle / "store.sqlite") as con:
        con.execute("UPDATE units SET doc_row = 999 WHERE row = 0")


def sentence_vectors(bundle: Path) -> np.ndarray:
    return Bundle.load(bundle, verify=False).sentence_vectors


def sentence_vectors_reshaped(bundle: Path) -> None:
    np.save(bundle / "sentence_vectors.npy", sentence_vectors(bundle)[:-1])


def sentence_vectors_float64(bundle: Path) -> None:
    np.save(bundle / "sentence_vectors.npy", sentence_vectors(bundle).astype(np.float64))


def counts_disagree(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["counts"]["sentences"] += 1
    (bundle / "manifest.json").write_text(json.dumps(manifest))


CASES = {
    "bm25 indices out of range": (bm25_indices_out_of_range, "body_*.npy indices: values outside"),
    "bm25 title of a missing document": (
        bm25_title_on_a_missing_document,
        "title_*.npy indices: values outside",
    ),
    "bm25 negative length": (bm25_negative_length, "unit_length.npy: expected"),
    "bm25 frequency past the units": (bm25_frequency_past_the_units, "df_titled.npy: a term in more units"),
    "bm25 file shorter than its header": (
        bm25_header_lies_about_its_shape,
        "body_tf.npy: its size does not match",
    ),
    "dense index of another kind": (
        dense_index_of_another_kind,
        "a IndexHNSWFlat, but the manifest says a 'flat'",
    ),
    "a sentence past its document": (sentence_past_its_document, "offsets fall outside"),
    "a unit on a missing document": (unit_on_a_missing_document, "units.doc_row: values outside"),
    "sentence vectors one row short": (sentence_vectors_reshaped, "sentence_vectors.npy: shape"),
    "sentence vectors float64": (sentence_vectors_float64, "dtype float64, expected float32"),
    "counts disagree with the manifest": (counts_disagree, "the manifest says"),
}


@pytest.mark.parametrize("case", CASES)
def test_unsound_contents_are_refused_naming_the_problem(
    case: str, sample_bundle: Path, tmp_path: Path
) -> None:
    change, message = CASES[case]
    bundle = tampered(sample_bundle, tmp_path, change)
    with pytest.raises(BundleCorrupt) as refused:
        Bundle.load(bundle)
    assert message in str(refused.value)


def test_an_unlisted_file_or_a_link_out_of_the_bundle_is_refused(sample_bundle: Path, tmp_path: Path) -> None:
    extra = tampered(sample_bundle, tmp_path / "a", lambda b: None)
    (extra / "bm25" / "extra.npy").write_bytes(b"x")  # not in the manifest
    with pytest.raises(BundleCorrupt, match=r"bm25/extra\.npy is not listed in the manifest"):
        Bundle.load(extra)
    outside = tmp_path / "outside.npy"
    np.save(outside, sentence_vectors(sample_bundle))

    def link_out(bundle: Path) -> None:
        (bundle / "sentence_vectors.npy").symlink_to(outside)

    linked = tampered(sample_bundle, tmp_path / "b", link_out)
    with pytest.raises(BundleCorrupt, match=r"sentence_vectors\.npy is a link to outside the bundle"):
        Bundle.load(linked)
    assert Bundle.load(sample_bundle).manifest.counts  # the untouched bundle still loads


def test_served_it_keeps_the_workers_up_and_ready_says_why(
    sample_bundle: Path, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    bundle = tampered(sample_bundle, tmp_path, bm25_indices_out_of_range)
    service = make_run(
        tmp_path / "run",
        bundle=bundle,
        env={"RAG_EMBEDDING_MODEL": str(tiny_models["e5"]), "RAG_RERANKER_MODEL": ""},
        wait_ready=False,
    )
    try:
        wait_for(f"{service.url}/health", 200, timeout=60, process=service.process)
        deadline = time.monotonic() + 90
        while (ready := httpx.get(f"{service.url}/ready", timeout=5)).json()["status"] == "starting":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # The first worker can answer before gunicorn has forked the others (it spawns them ~0.1 s apart):
        # compare against all the workers the master keeps, not the ones up when /ready first said failed.
        expected = int(re.search(r"workers=(\d+)", service.log.read_text())[1])
        while len(workers := service.workers()) < expected:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert "body_*.npy indices: values outside" in ready.json()["reason"]
        answer = httpx.post(
            f"{service.url}/answer", json={"question": "When was the Eiffel Tower completed?"}
        )
        assert answer.status_code == 503 and answer.json()["error_type"] == "not_ready"
        time.sleep(2)
        assert service.workers() == workers  # no worker died and was replaced
    finally:
        service.stop()
