"""`rag models export|import|preload`: models in the folders the onnx backend serves."""

from __future__ import annotations

import argparse
import sys

from ..config import load_settings
from .common import Subcommands, model_flags, settings_from

__all__ = ["add_parser"]


def cmd_models_export(args: argparse.Namespace) -> int:
    from ..models.export import export_model

    result = export_model(
        args.source,
        args.out,
        kind=args.kind,
        quantize=args.quantize,
        optimize=args.optimize,
        overwrite=args.force,
        settings=load_settings(),
    )
    spec = result.spec
    check = spec.export.get("check", {})
    variant = "int8 per-channel" if spec.export.get("quantization") else "fp32"
    cosine = f", min cosine {check['min_cosine']:.4f}" if "min_cosine" in check else ""
    print(
        f"exported {spec.kind} {spec.source_model} (fingerprint {spec.fingerprint}) → {result.path}: {variant}"
        f"{', optimised ' + str(spec.export['optimization']) if spec.export.get('optimization') else ''}, "
        f"opset {spec.export.get('opset')}, {result.bytes / 1e6:.1f} MB in {result.seconds:.1f}s; "
        f"vs torch: max |diff| {check.get('max_abs_diff', float('nan')):.2e}{cosine}"
    )
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from ..models.importer import ImportOptions, import_model_folder

    options = ImportOptions(
        kind=args.kind,
        name=args.name,
        pooling=args.pooling,
        query_prefix=args.query_prefix,
        passage_prefix=args.passage_prefix,
        max_seq_length=args.max_length,
        graph=args.graph,
        abstain_threshold=args.abstain_threshold,
        calibrated_with=args.calibrated_with or "",
    )
    spec = import_model_folder(args.source, args.out, options)
    detail = f", {spec.pooling} pooling, dim {spec.dim}" if spec.kind == "embedder" else ""
    prefix = f", query prefix {spec.query_prefix!r}" if spec.query_prefix else ""
    print(
        f"imported {spec.kind} {spec.source_model} (fingerprint {spec.fingerprint}) → {args.out or args.source}: "
        f"{spec.export.get('quantization') or 'fp32'}, max length {spec.max_seq_length}{detail}{prefix}"
    )
    return 0


def cmd_models_preload(args: argparse.Namespace) -> int:
    from ..models.preload import preload_models

    result = preload_models(
        args.dest,
        settings=settings_from(args),
        backend=args.backend,
        quantize=args.quantize,
        optimize=args.optimize,
        overwrite=args.force,
        check=not args.no_check,
        echo=lambda line: print(line, file=sys.stderr),
    )
    for model in result.models:
        print(
            f"preloaded {model.role} {model.name} (fingerprint {model.fingerprint}) → "
            f"{result.dest / model.path}: {model.format}, {model.bytes / 1e6:.1f} MB"
        )
    print(f"serve with: {' '.join(f'{k}={v}' for k, v in result.env.items())}")
    return 0


def add_parser(sub: Subcommands) -> None:
    models = sub.add_parser("models", help="model tooling")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    export = models_sub.add_parser(
        "export", help="export an embedder or cross-encoder to an ONNX folder for the onnx backend"
    )
    export.add_argument("source", metavar="SRC", help="hub id, local folder, or pkg:<module>")
    export.add_argument("--out", required=True, help="the ONNX folder to write (replaced whole)")
    export.add_argument("--kind", choices=["embedder", "cross-encoder"], help="default: from the folder")
    export.add_argument("--quantize", choices=["int8"], help="dynamic int8, per-channel weights")
    export.add_argument("--optimize", action="store_true", help="ONNX Runtime O2 graph fusions at export")
    export.add_argument("--force", action="store_true", help="replace an existing folder at --out")
    export.set_defaults(func=cmd_models_export)

    imp = models_sub.add_parser(
        "import",
        help="describe a published ONNX model folder (model.onnx + tokenizer.json) for the onnx backend",
    )
    imp.add_argument(
        "source", metavar="FOLDER", help="the folder as published (Optimum, fastembed, Xenova, …)"
    )
    imp.add_argument("--out", help="write a new folder here instead of recording the import in FOLDER")
    imp.add_argument(
        "--kind", choices=["embedder", "cross-encoder"], help="default: from the graph's outputs"
    )
    imp.add_argument("--name", help="the model's name to record (default: from config.json or the folder)")
    imp.add_argument("--pooling", choices=["mean", "cls"], help="embedders; default: detected")
    imp.add_argument("--query-prefix", help="embedders; default: the model family's instruction, if known")
    imp.add_argument("--passage-prefix", help="embedders; default: the model family's, if known")
    imp.add_argument(
        "--max-length", type=int, help="tokens per input; default: from the tokenizer and config"
    )
    imp.add_argument("--graph", help="the graph file inside FOLDER when it holds several")
    imp.add_argument(
        "--abstain-threshold",
        type=float,
        help="the calibrated confidence below which answers abstain, recorded in the folder and served unless "
        "set in the environment: a cross-encoder's probability (RAG_ABSTAIN_RERANK_THRESHOLD), an embedder's "
        "cosine for answers without a reranker (RAG_ABSTAIN_THRESHOLD)",
    )
    imp.add_argument("--calibrated-with", help="how that threshold was found: models, data, rule")
    imp.set_defaults(func=cmd_models_import)

    preload = models_sub.add_parser(
        "preload",
        help="fetch the configured models into one folder (DEST/embedder, DEST/reranker) to serve offline",
    )
    preload.add_argument("--dest", required=True, help="the models folder, e.g. /models")
    preload.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        help="onnx: export (default with --quantize/--optimize, else RAG_BACKEND); torch: copy the folders",
    )
    preload.add_argument("--quantize", choices=["int8"], help="export with dynamic int8 (implies onnx)")
    preload.add_argument("--optimize", action="store_true", help="ONNX Runtime O2 graph fusions at export")
    preload.add_argument("--force", action="store_true", help="replace existing model folders in DEST")
    preload.add_argument("--no-check", action="store_true", help="do not load the models once afterwards")
    model_flags(preload)
    preload.set_defaults(func=cmd_models_preload)
