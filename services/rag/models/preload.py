"""`rag models preload`: fetch the configured models into one folder, so that serving needs no network.

    DEST/
      embedder/     the embedding model: a copy of its folder (torch backend) or an export (onnx backend)
      reranker/     the cross-encoder, the same way; absent when no reranker is configured
      preload.json  what was fetched (references, revisions, names, fingerprints, formats) and the settings
                    that serve it: RAG_BACKEND, RAG_EMBEDDING_MODEL=DEST/embedder, RAG_RERANKER_MODEL=…

This is the step a Dockerfile runs at build time; the image then serves with HF_HUB_OFFLINE=1. References are
those the loaders take: hub ids (fetched with huggingface_hub, pinned by the configured revision), local
folders, and `pkg:<module>`. Hub downloads go to `Settings.models_dir` when set (kept: a build cache), else to a
temporary folder inside DEST that is removed at the end. Other formats of the weights (onnx/, openvino/, a
`.bin` next to `.safetensors`, TF/Flax files) are neither downloaded nor copied; they are not part of a model's
fingerprint either (`base.weight_files`), so bundles built from the full hub download are still accepted.

A torch copy keeps the model's query/passage prefixes: a folder called `embedder` no longer tells its family
(e5-, bge-), so the prefixes are written into its `config_sentence_transformers.json` prompts, which the loader
reads first. An onnx export records them in `rag_model.json`. Every model is loaded through the serving path
once before preload reports success.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import Settings
from ..errors import ModelError, RagError
from ..files import staged_dir
from .base import (
    ALTERNATE_FORMAT_DIRS,
    is_alternate_weights,
    known_prefixes,
    resolve_model_path,
    weights_fingerprint,
)
from .importer import ImportOptions, import_model_folder, is_importable
from .loading import ONNX_SPEC_FILE, load_embedder, load_reranker

__all__ = ["PRELOAD_FILE", "PreloadResult", "PreloadedModel", "preload_models"]

PRELOAD_FILE = "preload.json"
Role = Literal["embedder", "reranker"]
Backend = Literal["torch", "onnx"]

# Files no backend reads: other frameworks' weights, training leftovers, VCS and hub-client metadata.
_SKIP_FILES = (
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "*.mlmodel",
    "*.onnx_data",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
)
_SKIP_DIRS = (*sorted(ALTERNATE_FORMAT_DIRS), ".cache", ".git", ".huggingface")
_CHECK_QUERY = "When was the Eiffel Tower completed?"


@dataclass(frozen=True, slots=True)
class PreloadedModel:
    role: Role
    reference: str  # as configured: hub id, folder or pkg:
    revision: str | None  # as configured
    commit: str | None  # the hub snapshot actually fetched
    name: str
    fingerprint: str  # of the source weights: what bundles built with the model record
    format: str  # "torch" | "onnx" | "onnx-int8"
    path: str  # relative to the preload folder
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PreloadResult:
    dest: Path
    backend: Backend
    models: list[PreloadedModel]
    env: dict[str, str]  # the settings that serve from DEST
    seconds: float


def preload_models(
    dest: str | Path,
    *,
    settings: Settings,
    backend: Backend | None = None,
    quantize: Literal["int8"] | None = None,
    optimize: bool = False,
    overwrite: bool = False,
    check: bool = True,
    echo: Callable[[str], None] | None = None,
) -> PreloadResult:
    """Fetch `settings.embedding_model` (and `settings.reranker_model`, if any) into `dest`.

    backend: "onnx" exports (and with `quantize`, quantises) through `export.export_model`; "torch" copies the
    model folders. Default: "onnx" when quantising or optimising, else `settings.backend`.
    """
    started = time.perf_counter()
    backend = backend or ("onnx" if quantize or optimize else settings.backend)
    if backend == "torch" and (quantize or optimize):
        raise ModelError("--quantize and --optimize make ONNX exports: they need the onnx backend")
    dest = Path(dest)
    wanted = _wanted(settings, dest, overwrite)
    dest.mkdir(parents=True, exist_ok=True)
    cache = (
        Path(settings.models_dir) if settings.models_dir else Path(tempfile.mkdtemp(prefix=".hub-", dir=dest))
    )
    say = echo or (lambda _: None)
    try:
        models = []
        for role, reference, revision in wanted:
            say(f"{role}: {reference}{'@' + revision if revision else ''} …")
            model = _preload_one(
                dest, role, reference, revision, cache, backend, quantize, optimize, settings
            )
            say(
                f"{role}: {model.name} → {dest / model.path} ({model.format}, {model.bytes / 1e6:.1f} MB, "
                f"{model.seconds:.1f}s)"
            )
            models.append(model)
    finally:
        if not settings.models_dir:
            shutil.rmtree(cache, ignore_errors=True)
    env = {
        "HF_HUB_OFFLINE": "1",
        "RAG_BACKEND": backend,
        "RAG_EMBEDDING_MODEL": str((dest / "embedder").resolve()),
        "RAG_RERANKER_MODEL": str((dest / "reranker").resolve()) if settings.reranker_model else "",
    }
    if check:
        _check(env, settings)
    record = {"format": 1, "backend": backend, "models": {m.role: asdict(m) for m in models}, "env": env}
    (dest / PRELOAD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return PreloadResult(dest, backend, models, env, time.perf_counter() - started)


def _wanted(settings: Settings, dest: Path, overwrite: bool) -> list[tuple[Role, str, str | None]]:
    """(role, reference, revision) of each configured model; refused before anything is fetched when its
    folder in DEST exists and may not be replaced."""
    wanted: list[tuple[Role, str, str | None]] = [
        ("embedder", settings.embedding_model, settings.embedding_revision)
    ]
    if settings.reranker_model:
        wanted.append(("reranker", settings.reranker_model, settings.reranker_revision))
    for role, _, _ in wanted:
        if (dest / role).exists() and not overwrite:
            raise ModelError(f"{dest / role} exists (use --force to replace it)")
    return wanted


def _take_onnx(folder: Path, out: Path, role: Role, exported: bool) -> Any:
    """An ONNX folder into DEST: an export of `rag models export` copied as it is, a published one (Optimum,
    fastembed, …) described once by `rag models import` on the way."""
    kind: Literal["embedder", "cross-encoder"] = "embedder" if role == "embedder" else "cross-encoder"
    if not exported:
        return import_model_folder(folder, out, ImportOptions(kind=kind))  # replaces `out` whole
    from .onnx_backend import read_model_folder

    spec = read_model_folder(folder, kind)
    _replace(out, lambda work: _copy_folder(folder, work))
    return spec


def _preload_one(
    dest: Path,
    role: Role,
    reference: str,
    revision: str | None,
    cache: Path,
    backend: Backend,
    quantize: Literal["int8"] | None,
    optimize: bool,
    settings: Settings,
) -> PreloadedModel:
    started = time.perf_counter()
    name, folder, commit = fetch_model(reference, revision, cache, offline=settings.hub_offline)
    out = dest / role
    exported = (folder / ONNX_SPEC_FILE).is_file()
    if exported or is_importable(folder):  # ONNX already: served as it is
        if backend == "torch" or quantize or optimize:
            what = "an ONNX export" if exported else "an ONNX model"
            hint = " (export the original model to quantise or optimise it)" if exported else ""
            raise ModelError(f"{reference} is {what}: it serves only with the onnx backend, as it is{hint}")
        spec = _take_onnx(folder, out, role, exported)
        name, fingerprint = spec.source_model, spec.fingerprint
        fmt = "onnx-int8" if spec.export.get("quantization") else "onnx"
    elif backend == "onnx":
        from .export import export_model

        result = export_model(
            str(folder),
            out,
            kind="embedder" if role == "embedder" else "cross-encoder",
            quantize=quantize,
            optimize=optimize,
            overwrite=True,  # checked above, before anything was fetched
            settings=settings,
            name=name,
        )
        fingerprint = result.spec.fingerprint
        fmt = "onnx-int8" if quantize else "onnx"
    else:
        prefixes = known_prefixes(name, str(folder)) if role == "embedder" else ("", "")
        _replace(out, lambda work: _copy_model(folder, work, prefixes))
        fingerprint = weights_fingerprint(out)
        if fingerprint != weights_fingerprint(folder):  # the copy left out a file the fingerprint covers
            raise ModelError(f"{out}: the copy's weights differ from {folder}'s")
        fmt = "torch"
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return PreloadedModel(
        role=role,
        reference=reference,
        revision=revision,
        commit=commit,
        name=name,
        fingerprint=fingerprint,
        format=fmt,
        path=role,
        bytes=size,
        seconds=time.perf_counter() - started,
    )


def fetch_model(
    reference: str, revision: str | None, cache: Path, *, offline: bool = False
) -> tuple[str, Path, str | None]:
    """(name, local folder, hub commit or None). Hub ids are downloaded into `cache` (huggingface_hub layout)."""
    name, folder = resolve_model_path(reference)
    if folder is not None:
        marks = ("config.json", ONNX_SPEC_FILE)
        if not any(Path(folder, mark).is_file() for mark in marks) and not is_importable(Path(folder)):
            raise ModelError(
                f"model folder {folder} has no config.json (nor an ONNX graph and tokenizer.json)"
            )
        return name, Path(folder), None
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(
            repo_id=reference,
            revision=revision,
            cache_dir=str(cache),
            ignore_patterns=_hub_ignore_patterns(reference, revision, offline),
            local_files_only=offline,
        )
    except Exception as exc:  # the hub client raises many types; one clear line is what users need
        hint = " (HF_HUB_OFFLINE=1: only the cache was searched)" if offline else ""
        raise ModelError(f"cannot fetch model {reference!r}: {type(exc).__name__}: {exc}{hint}") from None
    path = Path(snapshot)
    # huggingface_hub's cache: …/models--org--name/snapshots/<commit>
    commit = path.name if path.parent.name == "snapshots" else None
    return reference, path, commit


def _hub_ignore_patterns(repo_id: str, revision: str | None, offline: bool) -> list[str]:
    """What not to download: other formats, training leftovers, and `.bin` files that have `.safetensors`
    beside them (which needs the repository's file list: without it, such duplicates are fetched but not
    copied). A repository that is itself an ONNX export (rag_model.json) is fetched whole."""
    patterns = [*_SKIP_FILES, *(f"{d}/*" for d in _SKIP_DIRS), *(f"*/{d}/*" for d in _SKIP_DIRS)]
    if offline:
        return patterns
    try:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception:  # no listing: snapshot_download will say what is wrong, if anything
        return patterns
    if ONNX_SPEC_FILE in files:
        return []
    by_folder: dict[str, set[str]] = {}
    for file in files:
        parent, _, base = file.rpartition("/")
        by_folder.setdefault(parent, set()).add(base)
    patterns += [
        file
        for file in files
        if is_alternate_weights(Path(file), frozenset(by_folder[file.rpartition("/")[0]]))
    ]
    return patterns


def _replace(out: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh folder next to `out`, then swap it in: `out` is never left half-written."""
    with staged_dir(out) as work:
        fill(work)


def _ignore(directory: str, names: list[str]) -> Iterable[str]:
    import fnmatch

    siblings = frozenset(names)
    skipped = {n for n in names if n in _SKIP_DIRS and Path(directory, n).is_dir()}
    skipped |= {n for n in names if any(fnmatch.fnmatch(n, p) for p in _SKIP_FILES)}
    skipped |= {n for n in names if is_alternate_weights(Path(n), siblings)}
    return skipped


def _copy_folder(source: Path, work: Path) -> None:
    # symlinks=False: the hub cache links snapshot files to blobs; the copy holds the contents
    shutil.copytree(source, work, symlinks=False, dirs_exist_ok=True)


def _copy_model(source: Path, work: Path, prefixes: tuple[str, str]) -> None:
    shutil.copytree(source, work, symlinks=False, ignore=_ignore, dirs_exist_ok=True)
    query, passage = prefixes
    if not (query or passage):
        return
    config_path = work / "config_sentence_transformers.json"
    config: dict[str, Any] = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError:
            raise ModelError(f"{source / config_path.name}: not valid JSON") from None
    prompts = config.get("prompts") or {}
    if prompts.get("query") or prompts.get("passage"):
        return  # the model's own prompts: known_prefixes reads them already
    config["prompts"] = {**prompts, "query": query, "passage": passage}
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _check(env: dict[str, str], settings: Settings) -> None:
    """Load what was written through the serving path, offline, and run it once."""
    served = settings.model_copy(
        update={
            "backend": env["RAG_BACKEND"],
            "embedding_model": env["RAG_EMBEDDING_MODEL"],
            "embedding_revision": None,
            "reranker_model": env["RAG_RERANKER_MODEL"] or None,
            "reranker_revision": None,
            "query_prefix": None,
            "passage_prefix": None,
        }
    )
    try:
        embedder = load_embedder(served)
        vector = embedder.encode([_CHECK_QUERY], kind="query")
        if vector.shape != (1, embedder.identity.dim):
            raise ModelError(f"the preloaded embedder returned shape {vector.shape}")
        reranker = load_reranker(served)
        if reranker is not None:
            reranker.score(_CHECK_QUERY, ["The Eiffel Tower was completed in 1889."])
    except RagError as exc:
        raise ModelError(f"the preloaded models do not load: {exc}") from None
