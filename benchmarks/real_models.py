"""What the real-weights evaluations share: the models `make models` fetches, the shared data, the machine line."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from bench_models import machine  # noqa: E402

SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODELS = Path(os.environ.get("RAG_MODELS_DIR", ROOT / "build" / "models"))


def echo(message: str) -> None:
    print(message, flush=True)


def real_models() -> tuple[Path, Path]:
    """(bge-small-en, ms-marco-MiniLM-L-12-v2) folders, after printing the CPU and its flags."""
    embedder, reranker = MODELS / "bge-small-en", MODELS / "ms-marco-MiniLM-L-12-v2"
    if not (embedder / "rag_model.json").is_file() or not (reranker / "rag_model.json").is_file():
        raise SystemExit(f"no models in {MODELS}: run make models")
    info = machine()
    echo(
        f"cpu: {info['cpu']}; usable cpus: {info['cpus_usable']}; flags: "
        + " ".join(f"{k}={'yes' if v else 'no'}" for k, v in info["flags"].items())
    )
    return embedder, reranker
