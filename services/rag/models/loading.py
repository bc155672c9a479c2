"""Turn settings into loaded models. Hub ids are fetched (or read from the cache) once, then loaded by folder.

`Settings.backend` picks the implementation: "torch" (sentence-transformers) or "onnx" (onnxruntime over a
folder made by `rag models export`). Each backend is imported only when chosen, so serving with onnx never
imports torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..config import Settings
from ..errors import ModelError
from .base import CrossEncoderModel, EmbeddingModel, known_prefixes, resolve_model_path, weights_fingerprint

__all__ = ["load_embedder", "load_reranker", "model_folder"]


ONNX_SPEC_FILE = "rag_model.json"  # what marks a folder made by `rag models export` (onnx_backend.SPEC_FILE)


def model_folder(
    reference: str, revision: str | None, settings: Settings, required: str = "config.json"
) -> tuple[str, str]:
    """(name, local folder). Downloads from the hub only for a hub id that is not a local path."""
    name, folder = resolve_model_path(reference)
    if folder is not None:
        if not Path(folder, required).exists():
            hint = " (export it with `rag models export`)" if required == ONNX_SPEC_FILE else ""
            raise ModelError(f"model folder {folder} has no {required}{hint}")
        return name, folder
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id=reference,
            revision=revision,
            cache_dir=settings.models_dir,
            local_files_only=settings.hub_offline,
        )
    except Exception as exc:  # the hub client raises many types; one clear line is what users need
        raise ModelError(f"cannot fetch model {reference!r}: {type(exc).__name__}: {exc}") from None
    return name, folder


def _onnx_folder(reference: str, revision: str | None, settings: Settings) -> str:
    from .importer import is_importable

    _, path = resolve_model_path(reference)
    if path is not None and not Path(path, ONNX_SPEC_FILE).exists() and is_importable(Path(path)):
        raise ModelError(
            f"model folder {path} is a published ONNX model not yet imported: run `rag models import {path}`"
        )
    _, folder = model_folder(reference, revision, settings, required=ONNX_SPEC_FILE)
    if not Path(folder, ONNX_SPEC_FILE).exists():  # a hub download
        raise ModelError(f"model {reference!r} has no {ONNX_SPEC_FILE} (not made by `rag models export`)")
    return folder


def _require_onnx_runtime() -> None:
    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(f"the onnx backend needs {' and '.join(missing)}: pip install 'rag[onnx]'")


def _snapshot_revision(folder: str) -> str | None:
    """The commit hash of a hub snapshot folder (`…/snapshots/<commit>`); None for a local model folder."""
    path = Path(folder)
    return path.name if path.parent.name == "snapshots" else None


def load_embedder(settings: Settings) -> EmbeddingModel:
    if settings.backend == "onnx":
        folder = _onnx_folder(settings.embedding_model, settings.embedding_revision, settings)
        _require_onnx_runtime()
        from .onnx_backend import OnnxEmbedder

        try:
            return OnnxEmbedder(
                folder,
                threads=settings.effective_threads(),
                max_seq_length=settings.max_seq_length,
                max_batch_tokens=settings.max_batch_tokens,
                query_prefix=settings.query_prefix,
                passage_prefix=settings.passage_prefix,
                profile_dir=settings.onnx_profile_dir,
            )
        except OSError as exc:
            raise ModelError(f"cannot load embedding model {settings.embedding_model!r}: {exc}") from None
    name, folder = model_folder(settings.embedding_model, settings.embedding_revision, settings)
    query_prefix, passage_prefix = known_prefixes(name, folder)
    if settings.query_prefix is not None:
        query_prefix = settings.query_prefix
    if settings.passage_prefix is not None:
        passage_prefix = settings.passage_prefix
    from .torch_backend import TorchEmbedder

    try:
        return TorchEmbedder(
            folder,
            name,
            weights_fingerprint(folder),
            query_prefix,
            passage_prefix,
            settings.max_seq_length,
            settings.effective_threads(),
            revision=_snapshot_revision(folder) or settings.embedding_revision,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load embedding model {settings.embedding_model!r}: {exc}") from None


def load_reranker(settings: Settings) -> CrossEncoderModel | None:
    if not settings.reranker_model:
        return None
    if settings.backend == "onnx":
        folder = _onnx_folder(settings.reranker_model, settings.reranker_revision, settings)
        _require_onnx_runtime()
        from .onnx_backend import OnnxCrossEncoder

        try:
            return OnnxCrossEncoder(
                folder,
                threads=settings.effective_threads(),
                max_seq_length=settings.reranker_max_tokens or settings.max_seq_length,
                max_batch_tokens=settings.max_batch_tokens,
                profile_dir=settings.onnx_profile_dir,
            )
        except OSError as exc:
            raise ModelError(f"cannot load reranker {settings.reranker_model!r}: {exc}") from None
    name, folder = model_folder(settings.reranker_model, settings.reranker_revision, settings)
    from .torch_backend import TorchCrossEncoder

    try:
        return TorchCrossEncoder(
            folder,
            name,
            settings.reranker_max_tokens or settings.max_seq_length,
            settings.effective_threads(),
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load reranker {settings.reranker_model!r}: {exc}") from None
