"""Builder: the one way a corpus becomes a bundle (CLI, ingestion jobs, evaluation, tests, benchmarks)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from rag_testkit.samples import sentences_corpus, write_corpus
from rag_testkit.stand_ins import RandomEmbedder

from rag.config import BuildConfig, Settings
from rag.corpus import load_corpus
from rag.errors import CorpusError, ModelError
from rag.index import Builder, read_manifest


def test_the_corpus_is_read_and_checked_before_a_model_is_loaded(tmp_path: Path) -> None:
    builder = Builder.from_settings(Settings(embedding_model=str(tmp_path / "no-model"), backend="onnx"))
    with pytest.raises(CorpusError):
        builder.load(tmp_path / "no-corpus")
    documents, _ = builder.load(write_corpus(tmp_path / "corpus"))
    with pytest.raises(ModelError):
        builder.build(documents, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_from_settings_builds_through_the_configured_embedding_cache(
    tmp_path: Path, settings, embedder
) -> None:
    cached = settings.model_copy(update={"embedding_cache": str(tmp_path / "cache.sqlite")})
    builder = Builder.from_settings(cached, embedder=embedder)
    documents, report = builder.load(write_corpus(tmp_path / "corpus"))
    cold = builder.build(documents, tmp_path / "cold", report=report)
    warm = builder.build(documents, tmp_path / "warm", report=report)
    assert cold.embedded > 0 and cold.cache_hits == 0
    assert warm.embedded == 0 and warm.cache_hits == cold.embedded
    assert read_manifest(tmp_path / "warm").files == read_manifest(tmp_path / "cold").files


@pytest.mark.parametrize("unit", ["sentence", "passage"])
def test_the_vectors_are_written_as_they_arrive_not_gathered_in_memory(tmp_path: Path, unit: str) -> None:
    """At 10M units the vectors are 15 GB: a build's head held them all, twice while concatenating. Now each
    chunk goes to a file in the staging folder, so what the build allocates (numpy's arrays are traced) stays
    far below their size. The bundle holds no scratch file."""
    builder = Builder(RandomEmbedder(2048), BuildConfig(unit=unit))  # the vectors dominate
    documents, _ = load_corpus(sentences_corpus(tmp_path / "corpus", docs=300))
    tracemalloc.start()
    try:
        built = builder.build(documents, tmp_path / "bundle")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    counts = built.manifest.counts
    vector_bytes = (counts["units"] + (counts["sentences"] if unit != "sentence" else 0)) * 2048 * 4
    assert vector_bytes > 40e6
    assert peak < vector_bytes / 4, (
        f"{peak / 1e6:.0f} MB allocated for {vector_bytes / 1e6:.0f} MB of vectors"
    )
    assert set(built.manifest.files) | {"manifest.json"} == {
        p.relative_to(tmp_path / "bundle").as_posix() for p in (tmp_path / "bundle").rglob("*") if p.is_file()
    }
