"""`rag models export`: a model folder → a self-contained ONNX folder that the onnx backend serves without torch.

The folder holds `model.onnx`, the tokenizer files, `rag_model.json` (see `onnx_backend.OnnxModelSpec`: kind,
pooling, prefixes, max length, the SOURCE model's name and weights fingerprint — so bundles built with the
torch model are accepted — and the export settings) and `manifest.json` (SHA-256 of every file).

Needs the `export` and `torch` extras (optimum's ONNX exporter). Quantisation is onnxruntime's dynamic int8,
per channel, with the first layer's FFN output projection kept in fp32 (see INT8_OP_TYPES: mean cosine to fp32
on MiniLM 0.956 per tensor, 0.9925 per channel, 0.994 with that one projection in fp32), called directly
(optimum's `ORTQuantizer` failed on O2-optimised graphs). Before the folder is moved into place, the export is
loaded through the serving path and compared with the torch model on a few texts; the numbers are recorded.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import Settings, load_settings
from ..errors import ModelError, RagError
from ..files import staged_dir, write_json_atomic
from .base import default_max_length, known_prefixes, pooling_mode, weights_fingerprint
from .loading import model_folder
from .onnx_backend import (
    MODEL_FILE,
    SPEC_FILE,
    TOKENIZER_FILE,
    OnnxCrossEncoder,
    OnnxEmbedder,
    OnnxModelSpec,
    write_model_manifest,
)

__all__ = ["ExportResult", "cpu_flags", "export_model"]


Kind = Literal["embedder", "cross-encoder"]
OPTIMIZATION_LEVEL = "O2"  # ORT fusions (attention, layer norm, GELU) without O3's approximate GELU
FP32_MAX_ABS_DIFF = 1e-3  # an fp32 export further than this from the torch model is refused
CHECK_TEXTS = (
    "When was the Eiffel Tower completed?",
    "Water boils at 100 degrees Celsius at sea level.",
    "a",
    "Photosynthesis converts light energy into chemical energy; it happens in the chloroplasts of plants, "
    "which also need water and minerals that the roots absorb from the soil.",
    "Cats sleep most of the day.",
)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    spec: OnnxModelSpec
    seconds: float
    bytes: int


def cpu_flags() -> dict[str, bool]:
    """The CPU features that decide how int8 weights should be quantised (Linux /proc/cpuinfo; else all False)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                break
    except OSError:
        pass
    return {name: name in flags for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")}


def detect_kind(folder: Path) -> Kind:
    if (folder / "modules.json").exists() or (folder / "sentence_bert_config.json").exists():
        return "embedder"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder / 'config.json'}: unreadable ({exc})") from None
    if any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return "cross-encoder"
    return "embedder"


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters' expected warnings (tracing notes, torch's legacy-exporter notices) are not errors here."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        yield


@dataclass(frozen=True, slots=True)
class _Source:
    transformer_folder: Path  # what optimum exports: the folder holding config.json and the weights
    fields: dict[str, Any]  # OnnxModelSpec fields learnt from the model
    notes: dict[str, Any]  # recorded in the export settings
    model: Any  # the torch model, for the parity check


def _describe_embedder(folder: Path) -> _Source:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    pooling: str | None = None
    normalize = False
    for module in model:
        module_type = type(module).__name__
        if module_type == "Pooling":
            pooling = pooling_mode(folder, module.get_config_dict())
        elif module_type == "Normalize":
            normalize = True
        elif module_type != "Transformer":
            raise ModelError(f"{folder}: module {module_type} is not supported by the onnx backend")
    if pooling is None:
        raise ModelError(f"{folder}: no pooling module")
    modules_file = folder / "modules.json"
    modules = json.loads(modules_file.read_text(encoding="utf-8")) if modules_file.exists() else []
    path = next((m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Transformer")), "")
    return _Source(
        transformer_folder=folder / path,
        fields={
            "pooling": pooling,
            "normalize": True,  # the EmbeddingModel contract: vectors are L2-normalised, as in the torch backend
            "dim": int(model.get_embedding_dimension()),
            "max_seq_length": int(model.max_seq_length),
        },
        notes={"source_normalize_module": normalize},
        model=model,
    )


def _describe_cross_encoder(folder: Path) -> _Source:
    from sentence_transformers import CrossEncoder

    # The torch backend's default: 512, unless the tokenizer or the position embeddings allow fewer.
    max_length = default_max_length(folder)
    model = CrossEncoder(str(folder), device="cpu", max_length=max_length, local_files_only=True)
    return _Source(folder, {"max_seq_length": max_length}, {}, model)


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


# Dynamic int8 as measured on all-MiniLM-L6-v2 (mean cosine to fp32 over the first sentences of the first 200
# SciFact abstracts; AVX2 machine without VNNI; tests/models/test_int8_quality.py): per-tensor 0.956,
# per-channel 0.9925, per-channel with the first layer's FFN output projection kept in fp32 0.9941 (min 0.990).
# That projection (GELU output × 1536→384) carries the largest activation outliers of the network; in later
# layers the same exclusion gains < 0.001. reduce_range (7-bit weights) made no measurable difference in
# quality here (0.9939–0.9941); it is kept without VNNI, where u8×s8 kernels can saturate on full-range weights.
INT8_OP_TYPES = ("MatMul", "Gather")  # Gather: the embedding tables (4× smaller files, no measurable loss)
INT8_KEEP_FP32 = re.compile(r"(^|/)layer\.0/output/dense/MatMul$")  # optimum's node names (BERT, XLM-R, …)


def _quantize_int8(path: Path, flags: dict[str, bool]) -> dict[str, Any]:
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    vnni = flags["avx512_vnni"] or flags["avx_vnni"]
    graph = onnx.load(str(path), load_external_data=False).graph
    keep = sorted(n.name for n in graph.node if n.op_type == "MatMul" and INT8_KEEP_FP32.search(n.name))
    config = {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "activation_type": "QUInt8",  # dynamic: per-batch scale and zero point, asymmetric
        "per_channel": True,
        "reduce_range": not vnni,
        "op_types": list(INT8_OP_TYPES),
        "nodes_kept_fp32": keep,
        "chosen_for": (
            "mean cosine ≥ 0.99 to fp32 (all-MiniLM-L6-v2: 0.994); "
            + ("VNNI: full-range int8 weights" if vnni else "no VNNI: reduce_range (7-bit weights)")
        ),
    }
    quantized = path.with_name("model.int8.onnx")
    quantize_dynamic(
        path,
        quantized,
        per_channel=True,
        reduce_range=not vnni,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(INT8_OP_TYPES),
        nodes_to_exclude=keep,
        # Fused (O2) operators defeat ONNX shape inference; their outputs are float32.
        extra_options={"DefaultTensorType": TensorProto.FLOAT, "MatMulConstBOnly": True},
    )
    quantized.replace(path)
    return config


def _check(folder: Path, kind: Kind, torch_model: Any, spec: OnnxModelSpec) -> dict[str, Any]:
    """Serve the export through the onnx backend and compare with the torch model on CHECK_TEXTS."""
    if kind == "embedder":
        onnx_model = OnnxEmbedder(folder, threads=1)
        texts = [spec.passage_prefix + t for t in CHECK_TEXTS]
        reference = np.asarray(
            torch_model.encode(
                texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        )
        got = onnx_model.encode(list(CHECK_TEXTS), kind="passage")
        cosine = float(np.min(np.sum(reference * got, axis=1)))
        return {
            "texts": len(texts),
            "max_abs_diff": float(np.abs(reference - got).max()),
            "min_cosine": cosine,
        }
    import torch

    scorer = OnnxCrossEncoder(folder, threads=1)
    query, passages = CHECK_TEXTS[0], list(CHECK_TEXTS[1:])
    logits = torch_model.predict(
        [(query, p) for p in passages],
        activation_fn=torch.nn.Identity(),
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    reference = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(len(passages), -1)[:, 0]))
    got = scorer.score(query, passages)
    return {"pairs": len(passages), "max_abs_diff": float(np.abs(reference - got).max())}


def _write_metadata(folder: Path, spec: OnnxModelSpec) -> None:
    write_json_atomic(folder / SPEC_FILE, spec.to_json())
    write_model_manifest(folder)


_TOOLS = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def export_model(
    source: str,
    out: str | Path,
    *,
    kind: Kind | None = None,
    quantize: Literal["int8"] | None = None,
    optimize: bool = False,
    opset: int | None = None,
    overwrite: bool = False,
    settings: Settings | None = None,
    revision: str | None = None,
    name: str | None = None,
) -> ExportResult:
    """Export `source` (hub id, folder or pkg:) to the folder `out`, which is only ever replaced whole.

    `name` overrides the model name recorded in `rag_model.json` (e.g. the hub id of a snapshot folder).
    """
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not overwrite:
        raise ModelError(f"{out} exists (use --force to replace it)")
    try:
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
        from optimum.exporters.onnx import main_export  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"export needs the export extra: pip install 'rag[torch,export]' ({exc})") from None
    found_name, folder_name = model_folder(source, revision, settings or load_settings())
    name = name or found_name
    folder = Path(folder_name)
    kind = kind or detect_kind(folder)
    try:
        with staged_dir(out) as work:
            spec = _export_into(work, name, folder, kind, quantize=quantize, optimize=optimize, opset=opset)
    except RagError:
        raise
    except (
        Exception
    ) as exc:  # torch, optimum, onnx and onnxruntime raise many types; one line is what users need
        raise ModelError(f"cannot export {source!r}: {type(exc).__name__}: {exc}") from exc
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportResult(path=out, spec=spec, seconds=time.perf_counter() - started, bytes=size)


def _export_into(
    work: Path,
    name: str,
    folder: Path,
    kind: Kind,
    *,
    quantize: Literal["int8"] | None,
    optimize: bool,
    opset: int | None,
) -> OnnxModelSpec:
    from optimum.exporters.onnx import main_export

    task = "feature-extraction" if kind == "embedder" else "text-classification"
    with _quiet_exporter():
        src = _describe_embedder(folder) if kind == "embedder" else _describe_cross_encoder(folder)
        main_export(
            str(src.transformer_folder),
            work,
            task=task,
            library_name="transformers",
            opset=opset,
            optimize=OPTIMIZATION_LEVEL if optimize else None,
            local_files_only=True,
            do_validation=False,  # _check below compares through the serving path instead
        )
    for required in (MODEL_FILE, TOKENIZER_FILE):
        if not (work / required).is_file():
            raise ModelError(f"the exporter wrote no {required} for {folder} (a fast tokenizer is needed)")
    config = json.loads((src.transformer_folder / "config.json").read_text(encoding="utf-8"))
    query_prefix, passage_prefix = known_prefixes(name, str(folder)) if kind == "embedder" else ("", "")
    flags = cpu_flags()
    export_settings: dict[str, Any] = {
        "task": task,
        "opset": _opset(work / MODEL_FILE),
        "optimization": OPTIMIZATION_LEVEL if optimize else None,
        "quantization": _quantize_int8(work / MODEL_FILE, flags) if quantize == "int8" else None,
        "cpu_flags": flags,
        **src.notes,
        "versions": {p: _version(p) for p in _TOOLS},
    }
    spec = OnnxModelSpec(
        kind=kind,
        source_model=name,
        fingerprint=weights_fingerprint(folder),
        vocab_size=int(config["vocab_size"]),
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        export=export_settings,
        **src.fields,
    )
    _write_metadata(work, spec)
    check = _check(work, kind, src.model, spec)
    if quantize is None and check["max_abs_diff"] > FP32_MAX_ABS_DIFF:
        raise ModelError(
            f"the fp32 export of {folder} differs from the torch model by {check['max_abs_diff']:.2e} "
            f"(more than {FP32_MAX_ABS_DIFF:g})"
        )
    spec = OnnxModelSpec.from_json(spec.to_json() | {"export": export_settings | {"check": check}})
    _write_metadata(work, spec)
    return spec
