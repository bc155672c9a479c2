"""`rag`: build a bundle, ask it questions, evaluate, and manage models, artifacts, the embedding cache and
ingestion jobs. One module per command; each leaf parser names the function it runs (`func`). Thin over the
Builder and the Pipeline; errors exit 2 with one line."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import RagError
from . import artifacts, ask, build, cache, evaluate, ingest, models

__all__ = ["build_parser", "main"]

_COMMANDS = (build, cache, ingest, ask, evaluate, models, artifacts)
_DESCRIPTION = (
    "Build an index bundle, ask it questions, score it, and manage models, bundle artifacts in S3, the "
    "embedding cache and ingestion jobs. Errors exit 2 with one line."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=_DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "eval" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # its search for CPU-specific builds reads as failures ("Could not load library …")
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except RagError as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
