"""int8 quantisation keeps the real all-MiniLM-L6-v2 close to fp32: mean cosine ≥ 0.99 over 200 SciFact
sentences (the first sentence of each of the first 200 abstracts), for the default `--quantize int8` export
with and without the O2 graph optimisation. Two real exports: `slow`."""

import json
from pathlib import Path

import numpy as np
import pytest
from rag_testkit.samples import SHARED_DATA

from rag.corpus.segment import split_sentences
from rag.models import OFFLINE_MINILM
from rag.models.export import export_model
from rag.models.onnx_backend import OnnxEmbedder

pytestmark = pytest.mark.slow

CORPUS = SHARED_DATA / "scifact" / "corpus.jsonl"


def first_sentences(n: int = 200) -> list[str]:
    sentences: list[str] = []
    with CORPUS.open(encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["text"]
            spans = split_sentences(text)
            if spans:
                sentences.append(text[spans[0].start : spans[0].end])
            if len(sentences) == n:
                break
    return sentences


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    # The evaluation data is part of every checkout's surroundings (CI included): missing is a failure.
    assert CORPUS.is_file(), f"{CORPUS} not found (set RAG_SHARED_DATA)"
    found = first_sentences()
    assert len(found) == 200
    return found


@pytest.fixture(scope="module")
def fp32_vectors(tmp_path_factory: pytest.TempPathFactory, sentences: list[str]) -> np.ndarray:
    folder = export_model(OFFLINE_MINILM, tmp_path_factory.mktemp("minilm") / "fp32").path
    return OnnxEmbedder(folder).encode(sentences, kind="passage")


@pytest.mark.parametrize("optimize", [False, True], ids=["plain", "O2"])
def test_int8_minilm_keeps_mean_cosine_to_fp32(
    optimize: bool, sentences: list[str], fp32_vectors: np.ndarray, tmp_path: Path
) -> None:
    result = export_model(OFFLINE_MINILM, tmp_path / "int8", quantize="int8", optimize=optimize)
    quantization = result.spec.export["quantization"]
    assert quantization["per_channel"] is True and quantization["nodes_kept_fp32"]
    vectors = OnnxEmbedder(result.path).encode(sentences, kind="passage")
    cosines = np.sum(vectors * fp32_vectors, axis=1)
    print(
        f"int8 ({'O2' if optimize else 'plain'}) vs fp32 over {len(sentences)} sentences: mean cosine "
        f"{cosines.mean():.4f}, min {cosines.min():.4f}, 5th percentile {np.percentile(cosines, 5):.4f}"
    )
    assert cosines.mean() >= 0.99
    assert cosines.min() >= 0.97  # no sentence falls apart
