"""`rag models import`: ONNX folders as publishers lay them out load as embedders and cross-encoders, and a folder
that is not a usable model fails in one line naming what is wrong."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.cli import main
from rag.config import Settings
from rag.errors import ModelError
from rag.models import load_embedder, load_reranker
from rag.models.importer import ImportOptions, import_model_folder
from rag.models.onnx_backend import OnnxCrossEncoder, OnnxEmbedder

QUERY = "what boils at sea level"
PASSAGES = [
    "Water boils at 100 degrees Celsius at sea level.",
    "Cats sleep.",
    "The Eiffel Tower is in Paris.",
]
# What a publisher's folder holds besides the graph (no rag_model.json, no manifest.json)
PUBLISHED = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json", "vocab.txt")


def published(export: Path, dest: Path, graph: str = "model.onnx", keep: tuple[str, ...] = PUBLISHED) -> Path:
    """`export` (made by `rag models export`) laid out as Optimum or Xenova publish it."""
    dest.mkdir(parents=True)
    (dest / graph).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(export / "model.onnx", dest / graph)
    for name in keep:
        if (export / name).is_file():
            shutil.copyfile(export / name, dest / name)
    return dest


def test_a_xenova_layout_embedder_imports_and_encodes_as_its_export(tiny_onnx_models, tmp_path) -> None:
    source = published(tiny_onnx_models["e5"], tmp_path / "xenova-e5", graph="onnx/model.onnx")
    (source / "1_Pooling").mkdir()
    (source / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    code = main(
        ["models", "import", str(source), "--out", str(tmp_path / "e5"), "--name", "intfloat/e5-tiny"]
    )
    assert code == 0
    imported = OnnxEmbedder(tmp_path / "e5")
    original = OnnxEmbedder(tiny_onnx_models["e5"])
    assert imported.spec.pooling == "mean" and imported.identity.query_prefix == "query: "  # the e5 family's
    assert original.identity.query_prefix == "query: "
    assert imported.identity.dim == original.identity.dim
    for kind in ("query", "passage"):
        np.testing.assert_allclose(
            imported.encode(PASSAGES, kind=kind), original.encode(PASSAGES, kind=kind), atol=1e-6
        )


def test_a_reranker_without_config_json_imports_in_place_and_scores_as_its_export(
    tiny_onnx_models, tmp_path
) -> None:
    source = published(tiny_onnx_models["reranker"], tmp_path / "reranker", keep=("tokenizer.json",))
    spec = import_model_folder(source)
    assert spec.kind == "cross-encoder" and spec.fingerprint.startswith("onnx-sha256:")
    assert {p.name for p in source.iterdir()} >= {"rag_model.json", "manifest.json"}
    settings = Settings(
        backend="onnx", embedding_model=str(tiny_onnx_models["e5"]), reranker_model=str(source)
    )
    reranker = load_reranker(settings)
    assert reranker is not None
    np.testing.assert_allclose(
        reranker.score(QUERY, PASSAGES),
        OnnxCrossEncoder(tiny_onnx_models["reranker"]).score(QUERY, PASSAGES),
        atol=1e-6,
    )
    (source / "tokenizer.json").write_text((source / "tokenizer.json").read_text().replace("<unk>", "<UNK>"))
    with pytest.raises(ModelError, match="checksum does not match"):  # the import recorded every file
        load_reranker(settings)


def test_serving_an_unimported_folder_says_how_to_import_it(tiny_onnx_models, tmp_path) -> None:
    source = published(tiny_onnx_models["e5"], tmp_path / "e5")
    with pytest.raises(ModelError, match=r"not yet imported: run `rag models import .*e5`"):
        load_embedder(Settings(backend="onnx", embedding_model=str(source), reranker_model=""))


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("no tokenizer", r"no tokenizer\.json"),
        ("no graph", r"no ONNX graph \(looked for model\.onnx"),
        ("not a graph", r"cannot be loaded by onnxruntime"),
        ("embedder as cross-encoder", r"has no output 'logits' for a cross-encoder"),
        ("tokenizer of another model", r"fails on token id \d+ .*tokenizer of another model"),
        ("unknown pooling", r"pooling unknown for 'mystery': pass --pooling mean or --pooling cls"),
        (
            "graph elsewhere, in place",
            r"the graph is onnx/model\.onnx; import it into a new folder with --out",
        ),
    ],
)
def test_a_folder_that_is_not_a_usable_model_fails_naming_why(
    tiny_onnx_models, tmp_path, capsys, problem: str, message: str
) -> None:
    e5, reranker = tiny_onnx_models["e5"], tiny_onnx_models["reranker"]
    source = published(reranker if problem == "tokenizer of another model" else e5, tmp_path / "mystery")
    args = ["models", "import", str(source)]
    if problem == "no tokenizer":
        (source / "tokenizer.json").unlink()
    elif problem == "no graph":
        (source / "model.onnx").unlink()
    elif problem == "not a graph":
        (source / "model.onnx").write_bytes(b"not an onnx graph")
    elif problem == "embedder as cross-encoder":
        args += ["--kind", "cross-encoder"]
    elif problem == "tokenizer of another model":  # the e5 tokenizer knows more words than the reranker
        shutil.copyfile(e5 / "tokenizer.json", source / "tokenizer.json")
    elif problem == "unknown pooling":
        (source / "config.json").unlink()
    elif problem == "graph elsewhere, in place":
        (source / "onnx").mkdir()
        (source / "model.onnx").rename(source / "onnx" / "model.onnx")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (source / "rag_model.json").exists()


def test_import_options_override_detection(tiny_onnx_models, tmp_path) -> None:
    source = published(tiny_onnx_models["e5"], tmp_path / "e5")
    options = ImportOptions(pooling="cls", query_prefix="Q: ", passage_prefix="", max_seq_length=16)
    spec = import_model_folder(source, tmp_path / "out", options)
    assert (spec.pooling, spec.query_prefix, spec.max_seq_length) == ("cls", "Q: ", 16)


def test_preload_imports_published_folders_into_dest_and_checks_they_serve(
    tiny_onnx_models, tmp_path
) -> None:
    from rag.models.preload import preload_models

    embedder = published(tiny_onnx_models["e5"], tmp_path / "published-e5")
    (embedder / "1_Pooling").mkdir()
    (embedder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean"}))
    reranker = published(
        tiny_onnx_models["reranker"], tmp_path / "published-reranker", keep=("tokenizer.json",)
    )
    settings = Settings(backend="onnx", embedding_model=str(embedder), reranker_model=str(reranker))
    result = preload_models(tmp_path / "models", settings=settings)  # loads both through the serving path
    assert [(m.role, m.format) for m in result.models] == [("embedder", "onnx"), ("reranker", "onnx")]
    assert not (embedder / "rag_model.json").exists()  # the published folders are left as they were
    assert (tmp_path / "models" / "reranker" / "rag_model.json").is_file()


def test_a_recorded_abstention_threshold_is_served_unless_the_setting_is_given(
    tiny_onnx_models, real_models, sample_bundle, tmp_path, monkeypatch
) -> None:
    from rag.config import load_settings
    from rag.pipeline import Pipeline

    source = published(tiny_onnx_models["reranker"], tmp_path / "published", keep=("tokenizer.json",))
    options = ImportOptions(abstain_threshold=0.42, calibrated_with="a test")
    spec = import_model_folder(source, tmp_path / "ce", options)
    assert spec.calibration == {"abstain_threshold": 0.42, "with": "a test"}
    monkeypatch.setenv("RAG_BACKEND", "onnx")
    # the embedder make models imports records the cosine threshold of answers without a reranker
    monkeypatch.setenv("RAG_EMBEDDING_MODEL", str(real_models / "bge-small-en"))
    monkeypatch.setenv("RAG_RERANKER_MODEL", str(tmp_path / "ce"))
    params = Pipeline.from_settings(load_settings(), sample_bundle).params
    assert (params.abstain_rerank_threshold, params.abstain_threshold) == (0.42, 0.602)
    monkeypatch.setenv("RAG_ABSTAIN_RERANK_THRESHOLD", "0.2")
    monkeypatch.setenv("RAG_ABSTAIN_THRESHOLD", "0.5")
    params = Pipeline.from_settings(load_settings(), sample_bundle).params
    assert (params.abstain_rerank_threshold, params.abstain_threshold) == (0.2, 0.5)
    # a cross-encoder's threshold is a probability; an embedder's a cosine, which may be negative
    with pytest.raises(ModelError, match=r"calibration abstain_threshold -0\.5 \(a probability\)"):
        import_model_folder(source, tmp_path / "y", ImportOptions(abstain_threshold=-0.5))
    e5 = published(tiny_onnx_models["e5"], tmp_path / "e5")
    cosine = ImportOptions(pooling="mean", abstain_threshold=-0.5)
    assert import_model_folder(e5, tmp_path / "x", cosine).calibration == {
        "abstain_threshold": -0.5,
        "with": "",
    }


@pytest.mark.parametrize("offset", [0, (1 << 24) - 5, (1 << 24) + 3])
def test_quantised_operators_are_found_across_read_chunks(offset: int, tmp_path: Path) -> None:
    """The graph is read in 16 MB chunks; an operator name cut by a chunk's end is still found."""
    from rag.models.importer import _is_quantized

    graph = tmp_path / "model.onnx"
    data = bytearray((1 << 24) + 64)
    graph.write_bytes(bytes(data))
    assert not _is_quantized(graph)
    data[offset : offset + len(b"MatMulInteger")] = b"MatMulInteger"
    graph.write_bytes(bytes(data))
    assert _is_quantized(graph)
