"""`rag models preload`: one models folder from hub ids, local folders and pkg: references, served offline."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.cli import main
from rag.config import Settings
from rag.errors import ModelError
from rag.models import OFFLINE_MINILM, load_embedder
from rag.models.base import resolve_model_path, weights_fingerprint
from rag.models.preload import PRELOAD_FILE, preload_models

SERVE_OFFLINE = textwrap.dedent(
    """
    import json, socket, sys

    def no_network(*args, **kwargs):
        raise OSError("network access during serving")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    socket.getaddrinfo = no_network

    from rag.config import Settings
    from rag.pipeline import Pipeline

    settings = Settings(threads=1, abstain_threshold=-1.0, abstain_rerank_threshold=0.0)
    pipeline = Pipeline.from_settings(settings, sys.argv[1])
    answer = pipeline.answer("When was the Eiffel Tower completed?")
    heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
    print(json.dumps({"heavy": heavy, "abstained": answer.abstained, "evidence": len(answer.evidence),
                      "rerank": "rerank" in answer.timings_ms}))
    """
)


def serve(dest: Path, bundle: Path) -> dict:
    """Answer from `bundle` in a fresh process configured only by the environment preload.json names."""
    record = json.loads((dest / PRELOAD_FILE).read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "HF_"))} | record["env"]
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", SERVE_OFFLINE, str(bundle)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_preload_int8_exports_serve_a_torch_built_bundle_offline(
    tiny_models, tiny_bundle, tmp_path, capsys
) -> None:
    dest = tmp_path / "models"
    args = ["models", "preload", "--dest", str(dest), "--quantize", "int8"]
    models = ["--embedding-model", str(tiny_models["e5"]), "--reranker-model", str(tiny_models["reranker"])]
    assert main(args + models) == 0
    out = capsys.readouterr().out
    assert f"RAG_EMBEDDING_MODEL={dest.resolve() / 'embedder'}" in out and "RAG_BACKEND=onnx" in out
    assert sorted(p.name for p in dest.iterdir()) == ["embedder", PRELOAD_FILE, "reranker"]  # no cache left
    record = json.loads((dest / PRELOAD_FILE).read_text())
    assert record["backend"] == "onnx"
    embedder, reranker = record["models"]["embedder"], record["models"]["reranker"]
    assert embedder["format"] == reranker["format"] == "onnx-int8"
    # the SOURCE weights' fingerprints: what bundles built with the torch models record
    assert embedder["fingerprint"] == weights_fingerprint(tiny_models["e5"])
    assert reranker["fingerprint"] == weights_fingerprint(tiny_models["reranker"])
    for role, kind in (("embedder", "embedder"), ("reranker", "cross-encoder")):
        spec = json.loads((dest / role / "rag_model.json").read_text())
        assert spec["kind"] == kind and spec["export"]["quantization"]["per_channel"] is True
    assert json.loads((dest / "embedder" / "rag_model.json").read_text())["query_prefix"] == "query: "

    result = serve(dest, tiny_bundle)
    assert result == {"heavy": [], "abstained": False, "evidence": result["evidence"], "rerank": True}
    assert result["evidence"] >= 1

    # an existing folder is refused unless --force
    assert main(args + models) == 2
    assert "exists (use --force to replace it)" in capsys.readouterr().err

    # ONNX exports are references too: taken as they are (quantising them again is refused)
    again = tmp_path / "again"
    settings = Settings(embedding_model=str(dest / "embedder"), reranker_model=str(dest / "reranker"))
    result_again = preload_models(again, settings=settings, backend="onnx")
    assert [m.format for m in result_again.models] == ["onnx-int8", "onnx-int8"]
    assert (again / "embedder" / "model.onnx").read_bytes() == (dest / "embedder" / "model.onnx").read_bytes()
    with pytest.raises(ModelError, match="is an ONNX export"):
        preload_models(tmp_path / "third", settings=settings, quantize="int8")


def test_preload_copies_pkg_minilm_for_torch_and_skips_an_empty_reranker(tmp_path) -> None:
    dest = tmp_path / "models"
    settings = Settings(embedding_model=OFFLINE_MINILM, reranker_model="", threads=1)
    result = preload_models(dest, settings=settings, backend="torch")
    assert [m.role for m in result.models] == ["embedder"] and not (dest / "reranker").exists()
    assert result.env["RAG_RERANKER_MODEL"] == "" and result.env["RAG_BACKEND"] == "torch"
    _, package_folder = resolve_model_path(OFFLINE_MINILM)
    assert package_folder is not None
    fingerprint = weights_fingerprint(package_folder)
    assert result.models[0].fingerprint == fingerprint and result.models[0].name == "all-MiniLM-L6-v2"
    model = load_embedder(Settings(embedding_model=str(dest / "embedder"), backend="torch", threads=1))
    assert model.identity.fingerprint == fingerprint and model.identity.dim == 384
    assert (model.identity.query_prefix, model.identity.passage_prefix) == ("", "")


def fake_hub_cache(cache: Path, repo_id: str, source: Path) -> tuple[Path, str]:
    """huggingface_hub's cache layout, as snapshot_download(local_files_only=True) reads it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = Path(shutil.copytree(source, repo / "snapshots" / commit))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    # what hub repositories carry besides the weights the torch backend loads
    (snapshot / "pytorch_model.bin").write_bytes(b"the same weights, pickled")
    (snapshot / "onnx").mkdir()
    (snapshot / "onnx" / "model.onnx").write_bytes(b"the same weights, as ONNX")
    (snapshot / "tf_model.h5").write_bytes(b"the same weights, for TensorFlow")
    return snapshot, commit


def test_preload_from_the_hub_cache_keeps_fingerprint_and_prefixes(
    tiny_models, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    snapshot, commit = fake_hub_cache(cache, "acme/tiny-e5-base", tiny_models["e5"])
    # other formats of the weights are not part of the model's identity
    assert weights_fingerprint(snapshot) == weights_fingerprint(tiny_models["e5"])
    settings = Settings(embedding_model="acme/tiny-e5-base", reranker_model=None, models_dir=str(cache))
    dest = tmp_path / "models"
    result = preload_models(dest, settings=settings, backend="torch")
    model = result.models[0]
    assert (model.name, model.commit, model.reference) == ("acme/tiny-e5-base", commit, "acme/tiny-e5-base")
    copied = {p.relative_to(dest / "embedder").as_posix() for p in (dest / "embedder").rglob("*")}
    assert "model.safetensors" in copied and "1_Pooling/config.json" in copied
    assert not {"pytorch_model.bin", "onnx", "tf_model.h5"} & copied
    assert cache.is_dir()  # Settings.models_dir is a cache to keep
    # a folder called `embedder` no longer names the e5 family: the prefixes travel in the folder
    served = load_embedder(Settings(embedding_model=str(dest / "embedder"), backend="torch", threads=1))
    assert (served.identity.query_prefix, served.identity.passage_prefix) == ("query: ", "passage: ")
    assert served.identity.fingerprint == weights_fingerprint(tiny_models["e5"]) == model.fingerprint


def test_preload_errors_are_one_line_model_errors(tiny_models, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(
        embedding_model="acme/not-in-the-cache", reranker_model=None, models_dir=str(tmp_path)
    )
    with pytest.raises(ModelError, match=r"cannot fetch model 'acme/not-in-the-cache'.*HF_HUB_OFFLINE=1"):
        preload_models(tmp_path / "models", settings=settings, backend="torch")
    assert not (tmp_path / "models" / "embedder").exists()
    with pytest.raises(ModelError, match="need the onnx backend"):
        preload_models(tmp_path / "models", settings=settings, backend="torch", quantize="int8")
    code = main(
        ["models", "preload", "--dest", str(tmp_path / "m"), "--embedding-model", str(tmp_path / "nothing")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "rag: error: cannot fetch model" in err
