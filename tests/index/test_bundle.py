import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rag_testkit.samples import write_corpus

from rag.config import Bm25Params, BuildConfig
from rag.corpus import load_corpus
from rag.errors import BundleCorrupt, BundleError, BundleModelMismatch, BundleNotFound, BundleVersionError
from rag.index import Builder, Bundle, read_manifest
from rag.pipeline import Pipeline


def checksums(path: Path) -> dict[str, str]:
    return {name: entry.sha256 for name, entry in read_manifest(path).files.items()}


def test_bundle_layout_and_manifest(sample_bundle: Path, embedder) -> None:
    manifest = read_manifest(sample_bundle)
    assert set(manifest.files) == {
        "store.sqlite",
        "dense.faiss",
        "bm25/body_offsets.npy",
        "bm25/body_units.npy",
        "bm25/body_tf.npy",
        "bm25/title_offsets.npy",
        "bm25/title_docs.npy",
        "bm25/title_tf.npy",
        "bm25/unit_length.npy",
        "bm25/title_length.npy",
        "bm25/df_titled.npy",
        "bm25/vocab.json",
        "bm25/params.json",
    }
    assert manifest.format_version == 2
    assert manifest.embedding_model.fingerprint == embedder.identity.fingerprint
    assert manifest.embedding_model.dim == 384
    assert manifest.embedding_model.query_prefix.startswith("Represent this sentence")
    assert manifest.counts["documents"] == 5 and manifest.counts["sentences"] == manifest.counts["units"]
    assert len(manifest.corpus_id) == 16 and manifest.created_at


def test_same_corpus_and_config_give_the_same_checksums(tmp_path: Path, corpus_dir: Path, embedder) -> None:
    documents, _ = load_corpus(corpus_dir)
    for unit, index in (
        ("sentence", "flat"),
        ("passage", "hnsw"),
        ("sentence", "ivf-pq"),
        ("passage", "hnsw-sq8"),
    ):
        config = BuildConfig(unit=unit, dense_index=index, passage_tokens=16)
        a, b = tmp_path / f"a-{unit}-{index}", tmp_path / f"b-{unit}-{index}"
        Builder(embedder, config).build(documents, a)
        Builder(embedder, config).build(list(documents), b)
        assert checksums(a) == checksums(b)
        assert ("unit_codes.npy" in checksums(a)) == (index == "ivf-pq")
        loaded = Bundle.load(a)  # compressed kinds serve their unit vectors decoded from 8-bit codes
        vectors = loaded.unit_vectors[np.arange(loaded.seg.n_units)]
        assert np.allclose(
            np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2 if index in ("ivf-pq", "hnsw-sq8") else 1e-4
        )


def test_warm_build_from_the_embedding_cache_is_byte_identical(
    tmp_path: Path, corpus_dir: Path, embedder
) -> None:
    documents, _ = load_corpus(corpus_dir)
    cache = tmp_path / "cache.sqlite"
    cold = Builder(embedder, BuildConfig(), cache_path=cache).build(documents, tmp_path / "cold")
    warm = Builder(embedder, BuildConfig(), cache_path=cache).build(documents, tmp_path / "warm")
    assert cold.embedded > 0 and warm.embedded == 0 and warm.cache_hits == cold.embedded
    assert checksums(tmp_path / "cold") == checksums(tmp_path / "warm")


def test_changed_file_is_refused_naming_it(tmp_path: Path, sample_bundle: Path) -> None:
    bundle = shutil.copytree(sample_bundle, tmp_path / "b")
    with (bundle / "bm25" / "vocab.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(BundleCorrupt, match=r"bm25/vocab\.json does not match its checksum"):
        Bundle.load(bundle)
    (bundle / "bm25" / "vocab.json").unlink()
    with pytest.raises(BundleCorrupt, match=r"bm25/vocab\.json is missing"):
        Bundle.load(bundle)


def test_unknown_format_version_and_unsafe_paths_are_refused(tmp_path: Path, sample_bundle: Path) -> None:
    bundle = shutil.copytree(sample_bundle, tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleVersionError, match="format version 99 is not supported"):
        Bundle.load(bundle)
    files = {**manifest["files"], "../escape": manifest["files"]["dense.faiss"]}
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "files": files}))
    with pytest.raises(BundleCorrupt, match="unsafe path"):
        Bundle.load(bundle)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(BundleCorrupt, match="not valid JSON"):
        Bundle.load(bundle)


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleNotFound, match="bundle not found"):
        Bundle.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleNotFound, match=r"no manifest\.json"):
        Bundle.load(tmp_path / "empty")


def test_bundle_built_with_another_model_is_refused(sample_bundle: Path, tiny_models) -> None:
    from rag.config import Settings
    from rag.models import load_embedder

    other = load_embedder(Settings(embedding_model=str(tiny_models["e5_other"]), backend="torch"))
    with pytest.raises(BundleModelMismatch, match="was built with embedding model 'BAAI/bge-small-en'"):
        Pipeline(Bundle.load(sample_bundle), other)


def test_a_failed_build_leaves_the_existing_bundle_untouched(
    tmp_path: Path, corpus_dir: Path, embedder
) -> None:
    documents, _ = load_corpus(corpus_dir)
    good = Builder(embedder, BuildConfig()).build(documents, tmp_path / "bundle")
    before = checksums(good.path)

    class Exploding:
        identity = embedder.identity

        def encode(self, *args, **kwargs):
            raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="killed mid-build"):
        Builder(Exploding(), BuildConfig()).build(documents, tmp_path / "bundle", overwrite=True)
    assert checksums(tmp_path / "bundle") == before
    Bundle.load(tmp_path / "bundle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "corpus"]  # no temporary directory left
    with pytest.raises(BundleError, match="already exists"):
        Builder(embedder, BuildConfig()).build(documents, tmp_path / "bundle")


def test_filters_select_inside_retrieval(sample_bundle: Path) -> None:
    bundle = Bundle.load(sample_bundle)
    mask = bundle.unit_mask({"tags": "botany"})
    docs = {bundle.documents[d].id for d in bundle.seg.unit_doc[mask]}
    assert docs == {"roots"}
    mask = bundle.unit_mask(
        {"tags": {"not": ["biology"]}, "source": ["paris.md", "water.txt", "plants.jsonl"]}
    )
    assert {bundle.documents[d].id for d in bundle.seg.unit_doc[mask]} == {"paris.md", "water.txt"}
    ids, _ = bundle.dense.search(np.ones(bundle.dense.dim, dtype=np.float32), 50, mask)
    assert set(ids.tolist()) == set(np.flatnonzero(mask).tolist())


def test_sample_corpus_loads_into_the_store(sample_bundle: Path) -> None:
    bundle = Bundle.load(sample_bundle)
    for d, s, e in zip(bundle.seg.sent_doc, bundle.seg.sent_start, bundle.seg.sent_end, strict=True):
        text = bundle.documents[d].text[s:e]
        assert text and text == text.strip()


def test_manifest_records_the_hub_revision_of_the_embedding_model(tmp_path: Path, tiny_models) -> None:
    from rag.config import Settings
    from rag.models import load_embedder

    snapshot = shutil.copytree(tiny_models["e5"], tmp_path / "hub" / "snapshots" / "0123abcd")
    embedder = load_embedder(Settings(embedding_model=str(snapshot), backend="torch"))
    assert embedder.identity.revision == "0123abcd"
    documents, _ = load_corpus(write_corpus(tmp_path / "corpus", {"a.txt": "One sentence. Two sentences."}))
    Builder(embedder, BuildConfig()).build(documents, tmp_path / "b")
    assert read_manifest(tmp_path / "b").embedding_model.revision == "0123abcd"


def test_with_bm25_scores_a_copy_and_leaves_the_bundle_as_it_was(sample_bundle: Path) -> None:
    bundle = Bundle.load(sample_bundle)
    other = bundle.with_bm25(Bm25Params(k1=0.5, b=0.2))
    assert other.bm25.params == Bm25Params(k1=0.5, b=0.2) and bundle.bm25.params == Bm25Params()
    assert other.dense is bundle.dense and other.documents is bundle.documents
    query = bundle.documents[0].text  # its words, at different frequencies in different documents
    assert not np.array_equal(bundle.bm25.scores(query), other.bm25.scores(query))
