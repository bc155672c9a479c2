"""What several commands share: settings from flags over RAG_*, and the model flags."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings

__all__ = ["Subcommands", "model_flags", "settings_from"]

Subcommands = argparse._SubParsersAction  # what `add_subparsers` returns


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings (RAG_*), with what the command's flags say in their place."""
    overrides: dict[str, Any] = {}
    for name in ("embedding_model", "reranker_model", "unit", "dense_index"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "no_rerank", False):
        overrides["reranker_model"] = None
    return Settings(**overrides)


def model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--embedding-model", help="hub id, local folder, or pkg:<module> (env RAG_EMBEDDING_MODEL)"
    )
    p.add_argument("--reranker-model", help="hub id or local folder (env RAG_RERANKER_MODEL; empty = off)")
    p.add_argument("--no-rerank", action="store_true", help="do not load or use a reranker")
