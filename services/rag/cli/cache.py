"""`rag embedding-cache stats|purge` (alias `rag cache`): the embedding cache file that `rag build --cache` fills
(RAG_EMBEDDING_CACHE)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from ..config import Settings, load_settings
from ..errors import RagError
from .common import Subcommands

__all__ = ["add_parser"]


def _path(args: argparse.Namespace, settings: Settings) -> Path:
    value = args.cache or settings.embedding_cache
    if not value:
        raise RagError("no embedding cache: pass --cache FILE or set RAG_EMBEDDING_CACHE")
    path = Path(value)
    if not path.is_file():
        raise RagError(f"{path}: no such embedding cache")
    return path


def _when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds else "-"


def _bounds(settings: Settings) -> tuple[int, int]:
    return settings.embedding_cache_max_entries, settings.embedding_cache_max_bytes


def cmd_purge(args: argparse.Namespace) -> int:
    from ..index.embedding_cache import EmbeddingCache

    settings = load_settings()
    max_entries, max_bytes = _bounds(settings)
    with EmbeddingCache(_path(args, settings), max_entries=max_entries, max_bytes=max_bytes) as cache:
        known = [t.model for t in cache.stats().tables]
        if args.table is not None and args.table not in known:
            raise RagError(f"no table {args.table!r} in {cache.path} (tables: {', '.join(known) or 'none'})")
        print(f"purged {cache.purge(args.table)} entries from {cache.path}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from ..index.embedding_cache import read_stats

    settings = load_settings()
    stats = read_stats(_path(args, settings), *_bounds(settings))  # read-only: never changes (or migrates) it
    if args.json:
        print(json.dumps({**asdict(stats), "hit_rate": stats.hit_rate}, indent=2))
        return 0
    rate = f"{stats.hit_rate:.1%}" if stats.hit_rate is not None else "-"
    print(
        f"{stats.path}: {stats.entries} vectors, {stats.bytes / 1e6:.1f} MB "
        f"(bounds {stats.max_entries} vectors, {stats.max_bytes / 1e6:.0f} MB); "
        f"oldest {_when(stats.oldest)}, newest {_when(stats.newest)}; "
        f"hits {stats.hits}, misses {stats.misses} (hit rate {rate}), evictions {stats.evictions}"
    )
    for table in stats.tables:
        print(f"  table {table.model}: {table.entries} vectors, {table.bytes / 1e6:.1f} MB", file=sys.stdout)
    return 0


def add_parser(sub: Subcommands) -> None:
    # Not `rag cache`, which read as the answer cache of POST /cache/purge; the old name stays an alias.
    cache = sub.add_parser(
        "embedding-cache", aliases=["cache"], help="the embedding cache of `rag build --cache`: stats, purge"
    )
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    stats = cache_sub.add_parser("stats", help="entries, bytes, oldest/newest, hit rate, per model table")
    stats.add_argument("--cache", help="the cache file (default RAG_EMBEDDING_CACHE)")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)
    purge = cache_sub.add_parser("purge", help="drop every entry, or one model's table (--table)")
    purge.add_argument("--cache", help="the cache file (default RAG_EMBEDDING_CACHE)")
    purge.add_argument("--table", help="one table (a model variant, as `rag embedding-cache stats` names it)")
    purge.set_defaults(func=cmd_purge)
