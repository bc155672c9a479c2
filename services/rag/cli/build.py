"""`rag build CORPUS --out BUNDLE`: a corpus becomes an index bundle (through the Builder)."""

from __future__ import annotations

import argparse
import sys
from typing import get_args

from ..config import DenseKind
from .common import Subcommands, model_flags, settings_from

__all__ = ["add_parser"]


def cmd_build(args: argparse.Namespace) -> int:
    from ..index import Builder

    settings = settings_from(args)
    if args.ray:
        settings = settings.model_copy(update={"ray_address": args.ray})
    builder = Builder.from_settings(settings, cache_path=args.cache)
    documents, report = builder.load(args.corpus)
    for warning in report.summary():
        print(f"warning: {warning}", file=sys.stderr)
    result = builder.build(documents, args.out, report=report, overwrite=args.force, progress=not args.quiet)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    config = builder.config
    counts = result.manifest.counts
    size = sum(f.bytes for f in result.manifest.files.values())
    print(
        f"built {result.path}: {counts['documents']} documents, {counts['sentences']} sentences, "
        f"{counts['units']} {config.unit} units in {result.seconds:.1f}s "
        f"({counts['units'] / max(result.embed_seconds, 1e-9):.0f} units/s embedded, {result.cache_hits} from cache), "
        f"{size / 1e6:.1f} MB, corpus_id {result.manifest.corpus_id}"
    )
    if builder.ray is not None:
        print(f"embedded on Ray at {builder.ray.address}: {len(builder.ray.nodes)} node(s)")
    return 0


def add_parser(sub: Subcommands) -> None:
    build = sub.add_parser("build", help="build an index bundle from a corpus folder or file")
    build.add_argument("corpus")
    build.add_argument("--out", required=True)
    build.add_argument("--unit", choices=["sentence", "passage", "document"])
    build.add_argument("--dense-index", choices=get_args(DenseKind))
    build.add_argument(
        "--cache",
        help="embedding cache file (SQLite; env RAG_EMBEDDING_CACHE); rebuilds embed only what changed",
    )
    build.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="embed on this Ray cluster (host:port; env RAG_RAY_ADDRESS); the bundle is byte-identical",
    )
    build.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    build.add_argument("--quiet", action="store_true")
    model_flags(build)
    build.set_defaults(func=cmd_build)
