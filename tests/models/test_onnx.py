"""The onnx backend against the torch backend, its load-time checks, and serving a torch-built bundle without torch."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rag.cli import main
from rag.config import RetrievalParams, Settings
from rag.errors import ModelError
from rag.index import Bundle
from rag.models import CrossEncoderModel, EmbeddingModel, load_embedder, load_reranker
from rag.models.base import weights_fingerprint
from rag.models.export import export_model
from rag.models.onnx_backend import OnnxCrossEncoder, OnnxEmbedder, sha256_file
from rag.pipeline import Pipeline

TEXTS = [
    "a",
    "When was the Eiffel Tower completed?",
    "Water boils at 100 degrees Celsius at sea level.",
    "Cats sleep most of the day; dogs bark at the postman every morning. " * 3,
    "Photosynthesis converts light energy into chemical energy in plants. " * 12,  # > 128 tokens: truncated
    "",
]
QUERY = "what boils at sea level"
PASSAGES = [
    TEXTS[2],
    "Cats sleep.",
    "x",
    "Cats sleep most of the day; dogs bark at the postman every morning. Roots absorb water and minerals.",
    "The Eiffel Tower is in Paris, France, and was completed in 1889.",
    "Roots absorb water and minerals from the soil. " * 20,  # beyond the tiny reranker's 128 positions
]


@pytest.fixture(scope="module")
def exports(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    # one export through the CLI, the others through the function
    assert main(["models", "export", str(tiny_models["e5"]), "--out", str(root / "e5")]) == 0
    export_model(str(tiny_models["reranker"]), root / "reranker", kind="cross-encoder")
    export_model(str(tiny_models["e5"]), root / "e5-int8", quantize="int8", optimize=True)
    export_model(str(tiny_models["reranker"]), root / "reranker-int8", quantize="int8")
    return {name: root / name for name in ("e5", "reranker", "e5-int8", "reranker-int8")}


def onnx_settings(exports: dict[str, Path], embedder: str = "e5", reranker: str = "reranker") -> Settings:
    return Settings(
        backend="onnx",
        embedding_model=str(exports[embedder]),
        reranker_model=str(exports[reranker]),
        threads=1,
    )


def test_fp32_embedder_matches_the_torch_backend(exports, tiny_embedder) -> None:
    embedder = tiny_embedder
    onnx = load_embedder(onnx_settings(exports))
    assert isinstance(onnx, OnnxEmbedder) and isinstance(onnx, EmbeddingModel)
    # same name, fingerprint, dim, prefixes and max length: bundles built with the torch model are accepted
    assert onnx.identity == embedder.identity
    for kind in ("query", "passage"):
        expected = embedder.encode(TEXTS, kind=kind)
        got = onnx.encode(TEXTS, kind=kind, batch_size=2)  # batches by length; order must come back
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert onnx.encode([], kind="query").shape == (0, 32)


def test_fp32_reranker_matches_the_torch_backend(exports, tiny_reranker) -> None:
    reranker = tiny_reranker
    onnx = load_reranker(onnx_settings(exports))
    assert isinstance(onnx, OnnxCrossEncoder) and isinstance(onnx, CrossEncoderModel)
    assert onnx.name == reranker.name
    expected = reranker.score(QUERY, PASSAGES)
    got = onnx.score(QUERY, PASSAGES, batch_size=2)
    assert got.dtype == np.float32 and got.shape == (len(PASSAGES),)
    assert np.abs(got - expected).max() < 1e-4
    assert onnx.score(QUERY, []).shape == (0,)


def test_int8_exports_stay_close_to_fp32(exports) -> None:
    fp32 = OnnxEmbedder(exports["e5"])
    int8 = OnnxEmbedder(exports["e5-int8"])
    cosines = np.sum(fp32.encode(TEXTS, kind="passage") * int8.encode(TEXTS, kind="passage"), axis=1)
    assert cosines.min() > 0.9
    scores = OnnxCrossEncoder(exports["reranker"]).score(QUERY, PASSAGES)
    scores_int8 = OnnxCrossEncoder(exports["reranker-int8"]).score(QUERY, PASSAGES)
    assert np.abs(scores - scores_int8).max() < 0.02
    settings = json.loads((exports["e5-int8"] / "rag_model.json").read_text())["export"]
    assert settings["optimization"] == "O2"
    assert settings["quantization"]["per_channel"] is True
    assert settings["quantization"]["weight_type"] == "QInt8"
    assert settings["quantization"]["op_types"] == ["MatMul", "Gather"]
    assert settings["quantization"]["nodes_kept_fp32"] == ["/encoder/layer.0/output/dense/MatMul"]
    reranker = json.loads((exports["reranker-int8"] / "rag_model.json").read_text())["export"]
    assert reranker["quantization"]["nodes_kept_fp32"] == ["/roberta/encoder/layer.0/output/dense/MatMul"]
    assert {"avx2", "avx512_vnni"} <= set(settings["cpu_flags"])
    assert settings["quantization"]["reduce_range"] == (
        not (settings["cpu_flags"]["avx512_vnni"] or settings["cpu_flags"]["avx_vnni"])
    )


def test_export_folder_describes_its_source(exports, tiny_models) -> None:
    spec = json.loads((exports["e5"] / "rag_model.json").read_text())
    assert spec["kind"] == "embedder" and spec["pooling"] == "mean" and spec["normalize"] is True
    assert (spec["query_prefix"], spec["passage_prefix"]) == ("query: ", "passage: ")
    assert spec["max_seq_length"] == 128 and spec["dim"] == 32
    assert spec["source_model"] == "tiny-e5-bert"
    assert spec["fingerprint"] == weights_fingerprint(tiny_models["e5"])
    assert spec["export"]["opset"] >= 14 and spec["export"]["quantization"] is None
    assert spec["export"]["check"]["max_abs_diff"] < 1e-4
    manifest = json.loads((exports["e5"] / "manifest.json").read_text())["files"]
    files = {p.name for p in exports["e5"].iterdir() if p.name != "manifest.json"}
    assert {"model.onnx", "tokenizer.json", "tokenizer_config.json", "rag_model.json"} <= files
    assert set(manifest) == files
    assert all(manifest[n]["sha256"] == sha256_file(exports["e5"] / n) for n in files)
    reranker = json.loads((exports["reranker"] / "rag_model.json").read_text())
    assert reranker["kind"] == "cross-encoder" and reranker["fingerprint"] == weights_fingerprint(
        tiny_models["reranker"]
    )


def test_padding_is_to_the_batch_longest_whatever_the_tokenizer_file_says(exports, tmp_path) -> None:
    # all-MiniLM-L6-v2's tokenizer.json pads everything to 128 tokens
    folder = copy_export(exports["e5"], tmp_path)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["padding"] = {
        "strategy": {"Fixed": 128},
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 0,
        "pad_type_id": 0,
        "pad_token": "[PAD]",
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    rehash(folder)
    model = OnnxEmbedder(folder)
    widths: list[int] = []
    run = model._session.run

    def recording_run(output: str, features: dict[str, np.ndarray]) -> np.ndarray:
        widths.append(features["input_ids"].shape[1])
        return run(output, features)

    model._session.run = recording_run  # type: ignore[method-assign]
    vectors = model.encode(["a", "b c", "Water boils at 100 degrees Celsius at sea level."], kind="query")
    assert max(widths) < 20
    np.testing.assert_allclose(
        vectors,
        OnnxEmbedder(exports["e5"]).encode(
            ["a", "b c", "Water boils at 100 degrees Celsius at sea level."], kind="query"
        ),
        atol=1e-6,
    )


def test_batches_hold_at_most_max_batch_tokens_padded_tokens_and_score_the_same(exports) -> None:
    """RAG_MAX_BATCH_TOKENS: the arena keeps the largest batch's activations, so no batch may exceed it."""
    budget = 64
    model = OnnxCrossEncoder(exports["reranker"], max_batch_tokens=budget)
    shapes: list[tuple[int, int]] = []
    run = model._session.run

    def recording_run(output: str, features: dict[str, np.ndarray]) -> np.ndarray:
        shapes.append(features["input_ids"].shape)
        return run(output, features)

    model._session.run = recording_run  # type: ignore[method-assign]
    scores = model.score(QUERY, PASSAGES * 4)
    assert len(shapes) > 2 and max(b * w for b, w in shapes if b > 1) <= budget
    assert sum(b for b, _ in shapes) == len(PASSAGES) * 4
    unbounded = OnnxCrossEncoder(exports["reranker"], max_batch_tokens=10**6).score(QUERY, PASSAGES * 4)
    np.testing.assert_allclose(scores, unbounded, atol=1e-5)


# ---- load-time checks --------------------------------------------------------------------------------------


def copy_export(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def rehash(folder: Path) -> None:
    """Make manifest.json agree with the files again (a consistent but broken folder)."""
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name, entry in manifest["files"].items():
        entry["sha256"] = sha256_file(folder / name)
    manifest_path.write_text(json.dumps(manifest))


def load(folder: Path) -> object:
    return load_embedder(Settings(backend="onnx", embedding_model=str(folder)))


def test_changed_file_fails_the_checksum(exports, tmp_path) -> None:
    folder = copy_export(exports["e5"], tmp_path)
    with (folder / "tokenizer_config.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(ModelError, match=r"tokenizer_config\.json: checksum does not match manifest\.json"):
        load(folder)


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "vocab.txt"])
def test_missing_file_is_named(exports, tmp_path, name: str) -> None:
    folder = copy_export(exports["e5"], tmp_path)
    (folder / name).unlink()
    with pytest.raises(ModelError, match=re.escape(name) + ": missing"):
        load(folder)


def test_missing_manifest_or_spec_is_named(exports, tmp_path) -> None:
    folder = copy_export(exports["e5"], tmp_path)
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelError, match=r"manifest\.json: missing"):
        load(folder)
    (folder / "rag_model.json").unlink()  # a graph and a tokenizer without a description: say how to add one
    with pytest.raises(ModelError, match=r"not yet imported: run `rag models import .*`"):
        load(folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"has no rag_model\.json"):
        load(folder)


def test_corrupt_model_is_named_even_with_a_matching_manifest(exports, tmp_path) -> None:
    folder = copy_export(exports["e5"], tmp_path)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"model\.onnx: checksum does not match"):
        load(folder)
    rehash(folder)
    with pytest.raises(ModelError, match=r"model\.onnx: cannot be loaded by onnxruntime"):
        load(folder)


def test_tokenizer_of_another_model_is_refused(exports, tmp_path) -> None:
    # the e5 tokenizer (~265 tokens) in the reranker's folder (vocabulary ~127)
    folder = copy_export(exports["reranker"], tmp_path)
    shutil.copy(exports["e5"] / "tokenizer.json", folder / "tokenizer.json")
    rehash(folder)
    with pytest.raises(
        ModelError, match=r"tokenizer\.json: has \d+ tokens but the model's vocabulary has \d+"
    ):
        OnnxCrossEncoder(folder)


def test_wrong_kind_and_torch_folders_are_refused(exports, tiny_models) -> None:
    with pytest.raises(ModelError, match="holds a model of kind 'embedder', not 'cross-encoder'"):
        load_reranker(Settings(backend="onnx", reranker_model=str(exports["e5"])))
    with pytest.raises(ModelError, match=r"has no rag_model\.json \(export it with `rag models export`\)"):
        load(tiny_models["e5"])


def test_cli_export_refuses_to_overwrite(exports, tiny_models, capsys) -> None:
    code = main(["models", "export", str(tiny_models["e5"]), "--out", str(exports["e5"])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "exists (use --force" in err


# ---- serving a torch-built bundle -------------------------------------------------------------------------

PARAMS = RetrievalParams(abstain_threshold=-1.0, abstain_rerank_threshold=0.0)


def test_onnx_pipeline_over_a_torch_built_bundle(exports, tiny_bundle, tiny_embedder, tiny_reranker) -> None:
    sample_bundle, embedder, reranker = tiny_bundle, tiny_embedder, tiny_reranker
    question = "When was the Eiffel Tower completed?"
    onnx = Pipeline(
        Bundle.load(sample_bundle),
        load_embedder(onnx_settings(exports)),
        load_reranker(onnx_settings(exports)),
        PARAMS,
    )
    torch = Pipeline(Bundle.load(sample_bundle), embedder, reranker, PARAMS)
    answer = onnx.answer(question)
    assert not answer.abstained and answer.answer and "rerank" in answer.timings_ms
    expected = torch.answer(question)
    assert [e.sentence_id for e in answer.evidence] == [e.sentence_id for e in expected.evidence]
    assert abs(answer.confidence - expected.confidence) < 1e-4


def test_serving_with_onnx_never_imports_torch(exports, tiny_bundle) -> None:
    sample_bundle = tiny_bundle
    script = textwrap.dedent(
        f"""
        import json, sys
        from rag.config import Settings
        from rag.pipeline import Pipeline

        settings = Settings(
            backend="onnx", embedding_model={str(exports["e5"])!r}, reranker_model={str(exports["reranker"])!r},
            threads=1, abstain_threshold=-1.0, abstain_rerank_threshold=0.0,
        )
        pipeline = Pipeline.from_settings(settings, {str(sample_bundle)!r})
        answer = pipeline.answer("When was the Eiffel Tower completed?")
        heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
        print(json.dumps({{"heavy": heavy, "abstained": answer.abstained, "evidence": len(answer.evidence)}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], result
    assert not result["abstained"] and result["evidence"] >= 1


def test_profile_dir_gets_each_sessions_operator_trace_at_exit(exports, tiny_bundle, tmp_path) -> None:
    sample_bundle = tiny_bundle
    # RAG_ONNX_PROFILE_DIR, read by Settings as the server would, and the traces written by the exit hook.
    script = textwrap.dedent(
        f"""
        from rag.config import Settings
        from rag.pipeline import Pipeline

        settings = Settings(threads=1)
        Pipeline.from_settings(settings, {str(sample_bundle)!r}).answer("When was the Eiffel Tower completed?")
        """
    )
    traces = tmp_path / "traces"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "HF_HUB_OFFLINE": "1",
        "RAG_BACKEND": "onnx",
        "RAG_EMBEDDING_MODEL": str(exports["e5"]),
        "RAG_RERANKER_MODEL": str(exports["reranker"]),
        "RAG_ONNX_PROFILE_DIR": str(traces),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    files = sorted(traces.glob("*.json"))
    assert [re.sub(r"-\d+_.*", "", f.name) for f in files] == ["cross-encoder", "embedder"], files
    for trace in files:
        ops = {e["args"]["op_name"] for e in json.loads(trace.read_text()) if e.get("cat") == "Node"}
        assert "MatMul" in ops or "FusedMatMul" in ops, (trace.name, ops)


def test_a_session_on_two_threads_stops_spinning_once_its_run_returns(real_models: Path) -> None:
    """An answer runs the embedder, then the cross-encoder. A pool still spinning after its run took a core
    from the next session: answers on 2 threads were no faster than on one (docs/BENCHMARKS.md)."""
    reranker = OnnxCrossEncoder(real_models / "ms-marco-MiniLM-L-12-v2", threads=2)
    passages = PASSAGES * 4
    reranker.score(QUERY, passages)
    idle = []
    for _ in range(3):
        reranker.score(QUERY, passages)
        started = time.process_time()  # CPU time of every thread in this process
        time.sleep(0.05)
        idle.append(time.process_time() - started)
    # spinning pool threads burned ~35 ms of these 50 ms; stopped ones burn ~0.1 ms
    assert min(idle) < 0.005, idle
