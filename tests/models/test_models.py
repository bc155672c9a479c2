import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ModelError
from rag.models import OFFLINE_MINILM, known_prefixes, load_embedder
from rag.models.base import default_max_length, weight_files, weights_fingerprint


def test_e5_family_gets_query_and_passage_prefixes(tiny_embedder, tiny_models) -> None:
    embedder = tiny_embedder
    assert (embedder.identity.query_prefix, embedder.identity.passage_prefix) == ("query: ", "passage: ")
    query = embedder.encode(["boiling water"], kind="query")
    same = embedder.encode(["query: boiling water"], kind="passage")
    # "passage: query: boiling water" != "query: boiling water": prefixes are applied per kind
    assert not np.allclose(query, same)
    override = load_embedder(
        Settings(embedding_model=str(tiny_models["e5"]), backend="torch", query_prefix="", passage_prefix="")
    )
    np.testing.assert_allclose(override.encode(["query: boiling water"], kind="passage"), query, atol=1e-6)


def test_vectors_are_float32_and_unit_length(embedder) -> None:
    vectors = embedder.encode(["a", "b c d", "Water boils."], kind="passage", batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (3, embedder.identity.dim) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_known_prefixes_by_family() -> None:
    assert known_prefixes("intfloat/e5-base-v2", None) == ("query: ", "passage: ")
    assert known_prefixes("sentence-transformers/all-MiniLM-L6-v2", None) == ("", "")


def test_reranker_scores_are_probabilities(reranker) -> None:
    scores = reranker.score("what boils", ["Water boils at 100 degrees.", "Cats sleep.", "x"])
    assert scores.shape == (3,) and scores.dtype == np.float32 and ((scores > 0) & (scores < 1)).all()
    assert reranker.score("q", []).shape == (0,)


def test_offline_minilm_from_its_package_has_no_prefix() -> None:
    model = load_embedder(Settings(embedding_model=OFFLINE_MINILM, backend="torch", threads=1))
    assert model.identity.name == "all-MiniLM-L6-v2" and model.identity.dim == 384
    assert model.identity.query_prefix == "" and model.identity.max_seq_length == 256
    a, b, c = model.encode(
        ["A man is eating food.", "A man eats a meal.", "The stock market fell."], kind="passage"
    )
    assert a @ b > 0.6 > a @ c


def test_missing_model_folder_and_package_give_model_errors(tmp_path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelError, match=r"has no config\.json"):
        load_embedder(Settings(embedding_model=str(tmp_path / "empty-model"), backend="torch"))
    with pytest.raises(ModelError, match="not installed"):
        load_embedder(Settings(embedding_model="pkg:no_such_model_package", backend="torch"))


def test_reranker_truncates_at_its_position_embeddings(tiny_reranker, tiny_models) -> None:
    reranker = tiny_reranker
    # the tiny reranker has 130 positions (128 usable: XLM-R's start after the padding index), not 512
    assert reranker.max_length == 128 == default_max_length(tiny_models["reranker"])
    scores = reranker.score("what boils", ["Water boils at 100 degrees. " * 60, "Cats sleep."])
    assert scores.shape == (2,) and ((scores > 0) & (scores < 1)).all()


def test_default_max_length_from_config_and_tokenizer(tmp_path) -> None:
    def folder(name: str, config: dict, tokenizer: dict | None = None) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps(config))
        if tokenizer is not None:
            (path / "tokenizer_config.json").write_text(json.dumps(tokenizer))
        return path

    xlmr = {"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    assert default_max_length(folder("xlmr", xlmr, {"model_max_length": 1e30})) == 512
    bert = {"model_type": "bert", "max_position_embeddings": 512}
    assert default_max_length(folder("bert", bert)) == 512
    assert default_max_length(folder("short", bert, {"model_max_length": 256})) == 256
    assert default_max_length(folder("tiny", {"model_type": "bert", "max_position_embeddings": 64})) == 64
    assert default_max_length(folder("long", {"model_type": "bert", "max_position_embeddings": 8192})) == 512


def test_fingerprint_ignores_other_formats_of_the_weights(tiny_models, tmp_path) -> None:
    folder = Path(shutil.copytree(tiny_models["e5"], tmp_path / "model"))
    fingerprint = weights_fingerprint(folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickled copy")  # transformers loads the safetensors
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx copy")
    (folder / "openvino").mkdir()
    (folder / "openvino" / "openvino_model.bin").write_bytes(b"openvino copy")
    assert weights_fingerprint(folder) == fingerprint
    assert [p.name for p in weight_files(folder)] == ["model.safetensors"]
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(b"a module's only weights")
    assert weights_fingerprint(folder) != fingerprint
