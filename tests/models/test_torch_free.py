"""Serving needs no torch at all: the project installed with only the `onnx` extra, in a fresh venv (no system
site-packages), answers from a bundle built with the torch model, using its ONNX export.

Installs from the configured package indexes (`-c constraints.txt`, as every install of this project): PyPI
on a CI machine, the local wheel folders here. A minute or more: `slow`.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.config import RetrievalParams
from rag.index import Bundle
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "When was the Eiffel Tower completed?"
HEAVY = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-onnx", "accelerate")

CHECK = textwrap.dedent(
    """
    import importlib.metadata, importlib.util, json, sys

    try:
        import torch  # noqa: F401
    except ImportError as exc:
        torch_error = type(exc).__name__
    else:
        torch_error = None

    import rag
    from rag.config import Settings
    from rag.pipeline import Pipeline

    bundle, embedder, reranker, question = sys.argv[1:5]
    settings = Settings(
        backend="onnx", embedding_model=embedder, reranker_model=reranker, threads=1,
        abstain_threshold=-1.0, abstain_rerank_threshold=0.0,
    )
    pipeline = Pipeline.from_settings(settings, bundle)
    answer = pipeline.answer(question)
    from rag.api import create_app  # the HTTP service over the same pipeline: still no torch

    create_app(settings, pipeline)
    print(json.dumps({
        "torch_error": torch_error,
        "rag_file": rag.__file__,
        "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
        "loaded": sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules),
        "abstained": answer.abstained,
        "evidence": [e.sentence_id for e in answer.evidence],
        "rerank": "rerank" in answer.timings_ms,
    }))
    """
)


def _clean_env() -> dict[str, str]:
    """The caller's environment minus what would leak its Python packages or settings into the venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_USER", "PIP_TARGET", "PIP_PREFIX")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("RAG_")}
    return env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "HF_HUB_OFFLINE": "1"}


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def onnx_only_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("torch-free")
    # A copy of the project: building it must not write egg-info or build/ into the working tree.
    source = root / "project"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "services",
        source / "services",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    venv = root / "venv"
    # the base interpreter, not this venv's (whose site-packages hold torch): a venv made from a venv
    # already links to the base, and --system-site-packages is not given
    _run([sys.executable, "-m", "venv", str(venv)], root, timeout=300)
    python = venv / "bin" / "python"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(source / "constraints.txt"),
            f"{source}[onnx,api]",
        ],
        root,
        timeout=1800,
    )
    return venv


def test_onnx_serving_in_a_venv_without_torch(
    onnx_only_venv: Path, real_models: Path, sample_bundle: Path, embedder, reranker
) -> None:
    """The default models (`make models`), served from a venv that has no torch at all."""
    models = {"e5": real_models / "bge-small-en", "reranker": real_models / "ms-marco-MiniLM-L-12-v2"}
    python = onnx_only_venv / "bin" / "python"
    args = [str(sample_bundle), str(models["e5"]), str(models["reranker"]), QUESTION]
    done = _run([str(python), "-W", "error", "-c", CHECK, *args], onnx_only_venv, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["torch_error"] in ("ModuleNotFoundError", "ImportError")
    assert not set(HEAVY) & set(result["distributions"]), result["distributions"]
    assert {"rag", "onnxruntime", "tokenizers"} <= set(result["distributions"])
    assert result["loaded"] == []
    assert Path(result["rag_file"]).is_relative_to(onnx_only_venv)  # the installed package, not the tree
    # the same answer as this process's pipeline over the same bundle
    params = RetrievalParams(abstain_threshold=-1.0, abstain_rerank_threshold=0.0)
    expected = Pipeline(Bundle.load(sample_bundle), embedder, reranker, params).answer(QUESTION)
    assert not result["abstained"] and result["rerank"]
    assert result["evidence"] == [e.sentence_id for e in expected.evidence]

    # the `rag` entry point too, configured by the environment alone
    env = _clean_env() | {
        "RAG_BACKEND": "onnx",
        "RAG_EMBEDDING_MODEL": str(models["e5"]),
        "RAG_RERANKER_MODEL": str(models["reranker"]),
        "RAG_THREADS": "1",
        "RAG_ABSTAIN_THRESHOLD": "-1",
        "RAG_ABSTAIN_RERANK_THRESHOLD": "0",
    }
    cli = subprocess.run(
        [str(onnx_only_venv / "bin" / "rag"), "ask", str(sample_bundle), QUESTION, "--json"],
        cwd=onnx_only_venv,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    answer = json.loads(cli.stdout)
    assert [e["sentence_id"] for e in answer["evidence"]] == result["evidence"]
