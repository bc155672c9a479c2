"""Builder: the one way a corpus becomes a bundle (CLI, ingestion jobs, evaluation, tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rag_testkit.samples import write_corpus

from rag.config import Settings
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
