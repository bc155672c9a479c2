"""`rag artifacts push|gate|download|promote|rollback|list|pull`: bundle versions and channels in S3."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from ..errors import ConfigError, RagError
from .common import Subcommands

__all__ = ["add_parser"]


def _store(args: argparse.Namespace, settings: Settings | None = None, uri: str | None = None) -> Any:
    from ..artifacts import S3Location, S3Store

    settings = settings or load_settings()
    uri = uri or args.uri or settings.artifacts_uri
    if not uri:
        raise ConfigError("no artifacts location: pass --uri s3://bucket/prefix or set RAG_ARTIFACTS_URI")
    return S3Store(
        S3Location.parse(uri),
        endpoint_url=args.endpoint_url or settings.s3_endpoint_url,
        deadline_seconds=args.timeout or settings.artifacts_timeout_seconds,
    )


def cmd_push(args: argparse.Namespace) -> int:
    from .. import artifacts

    store = _store(args)
    version, uploaded = artifacts.push_bundle(store, Path(args.bundle), args.version)
    if args.json:
        print(json.dumps({"version": version, "uploaded": uploaded, "location": str(store.location)}))
    else:
        state = "pushed" if uploaded else "already there (byte-identical)"
        print(f"{state}: {version} → {store.location}/bundles/{version}/")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """0: the new bundle may go on the channel; 1: refused (quality fell); errors exit 2 as everywhere."""
    from .. import artifacts
    from ..errors import ArtifactNotFound
    from ..eval.gate import quality_gate
    from ..index import read_manifest

    if (args.bundle is None) == (args.version is None):
        raise RagError("give a local BUNDLE or --version of one in S3 (exactly one)")
    store = _store(args)
    new = (
        read_manifest(args.bundle) if args.bundle else artifacts.read_version_manifest(store, args.version)[1]
    )
    try:
        channel = artifacts.read_channel(store, args.channel)
    except ArtifactNotFound:
        channel = None
    current = artifacts.read_version_manifest(store, channel.version)[1] if channel else None
    against = f"channel {args.channel}" + (f" at {channel.version}" if channel else "")
    verdict = quality_gate(new, current, metric=args.metric, margin=args.margin, against=against)
    print(f"quality gate: {verdict.message}", file=sys.stdout if verdict.passed else sys.stderr)
    return 0 if verdict.passed else 1


def cmd_download(args: argparse.Namespace) -> int:
    from .. import artifacts

    names = artifacts.download_prefix(_store(args, uri=args.source), Path(args.dest))
    print(f"downloaded {len(names)} object(s) from {args.source} → {args.dest}")
    return 0


def _point_milvus(channel: str, version: str) -> str:
    """With RAG_MILVUS_URI set, point the channel's Milvus alias at the version's collection too. It runs
    before the S3 record moves, so a version never published to Milvus leaves both where they were."""
    settings = load_settings()
    if not settings.milvus_uri:
        return ""
    from ..milvus import connect
    from ..milvus.publish import point_alias
    from ..milvus.schema import alias_name

    point_alias(connect(settings), settings.milvus_prefix, channel, version)
    return f"; Milvus alias {alias_name(settings.milvus_prefix, channel)} → {version}"


def cmd_promote(args: argparse.Namespace) -> int:
    from .. import artifacts

    store = _store(args)
    milvus = ""
    if load_settings().milvus_uri:
        artifacts.read_version_manifest(store, args.version)  # a version S3 lacks moves neither pointer
        milvus = _point_milvus(args.channel, args.version)
    channel = artifacts.promote(store, args.version, args.channel)
    print(f"channel {channel.name}: {channel.previous} → {channel.version}{milvus}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from .. import artifacts
    from ..errors import ArtifactNotFound

    store = _store(args)
    current = artifacts.read_channel(store, args.channel)
    if not current.history:
        raise ArtifactNotFound(f"channel {args.channel!r} has no earlier version to roll back to")
    milvus = _point_milvus(args.channel, current.history[0])
    channel = artifacts.rollback(store, args.channel)
    print(f"channel {channel.name}: {channel.previous} → {channel.version} (rolled back){milvus}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .. import artifacts

    listing = artifacts.list_artifacts(_store(args))
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for version in listing["versions"]:
        on = [name for name, c in listing["channels"].items() if c["version"] == version]
        print(f"{version}{'  ← ' + ', '.join(sorted(on)) if on else ''}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from .. import artifacts

    result = artifacts.pull_bundle(
        _store(args),
        Path(args.dest),
        version=args.version,
        channel=args.channel,
        indexes=not args.without_indexes,
    )
    state = "pulled and verified" if result.downloaded else "already present, verified"
    state += " (without its indexes)" if args.without_indexes else ""
    print(f"{state}: {result.version} → {result.path}")
    return 0


def cmd_publish_milvus(args: argparse.Namespace) -> int:
    """Load a bundle into its version's collection (checked: row count, a probe search); with --channel,
    point the channel's alias at it once the checks passed."""
    from ..index import Bundle
    from ..milvus import bundle_version, connect
    from ..milvus.publish import point_alias, publish_bundle

    settings = load_settings()
    # Verified against its manifest first; whole, whatever RAG_RETRIEVAL_BACKEND says: the rows need its vectors.
    bundle = Bundle.load(args.bundle)
    version = args.version or bundle_version(bundle)
    client = connect(settings, args.milvus_uri)
    published = publish_bundle(
        client,
        bundle,
        version,
        settings.milvus_prefix,
        bm25=settings.milvus_bm25,
        bm25_params=settings.bm25_params(),
    )
    previous = point_alias(client, settings.milvus_prefix, args.channel, version) if args.channel else None
    result = {**published.__dict__, "channel": args.channel, "previous": previous}
    if args.json:
        print(json.dumps(result))
    else:
        state = "published" if published.created else "already published, checked"
        moved = f"; channel {args.channel}: {previous} → {version}" if args.channel else ""
        print(f"{state}: {version} → {published.collection} ({published.rows:,} units){moved}")
    return 0


def _action(sub: Subcommands, name: str, run: Callable[[argparse.Namespace], int], help: str) -> Any:
    """A subcommand with the S3 flags every action takes."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--uri", help="s3://bucket/prefix (env RAG_ARTIFACTS_URI)")
    p.add_argument("--endpoint-url", help="an S3-compatible endpoint (env RAG_S3_ENDPOINT_URL)")
    p.add_argument(
        "--timeout",
        type=float,
        help="give up after this many seconds of retries (RAG_ARTIFACTS_TIMEOUT_SECONDS)",
    )
    p.set_defaults(func=run)
    return p


def add_parser(sub: Subcommands) -> None:
    arts = sub.add_parser("artifacts", help="bundle versions and channels in S3 (push, promote, pull, …)")
    actions = arts.add_subparsers(dest="artifacts_command", required=True)
    push = _action(actions, "push", cmd_push, "upload a bundle as a new immutable version")
    push.add_argument("bundle")
    push.add_argument("--version", help="default: <build time>-<corpus id>")
    push.add_argument("--json", action="store_true", help="print {version, uploaded, location}")
    gate = _action(
        actions,
        "gate",
        cmd_gate,
        "exit 1 when a bundle's recorded metric is more than --margin below the channel's version",
    )
    gate.add_argument("bundle", nargs="?", help="a local bundle (or --version: one already in S3)")
    gate.add_argument("--version", help="a pushed version to check instead of a local bundle")
    gate.add_argument("--channel", required=True, help="compare with the version this channel points at")
    gate.add_argument("--metric", default="ndcg@10", help="a metric recorded by `rag eval --bundle --record`")
    gate.add_argument("--margin", type=float, default=0.02, help="allowed drop (absolute; default 0.02)")
    download = _action(
        actions,
        "download",
        cmd_download,
        "copy every object under an s3:// prefix into a folder (a corpus kept in S3)",
    )
    download.add_argument("source", help="s3://bucket/prefix")
    download.add_argument("--dest", required=True, help="the folder to fill (replaced whole)")
    promote = _action(actions, "promote", cmd_promote, "point a channel at a version")
    promote.add_argument("version")
    promote.add_argument("--channel", required=True)
    rollback = _action(actions, "rollback", cmd_rollback, "move a channel back to its previous version")
    rollback.add_argument("--channel", required=True)
    listing = _action(actions, "list", cmd_list, "versions and the channels pointing at them")
    listing.add_argument("--json", action="store_true")
    pull = _action(
        actions, "pull", cmd_pull, "download, verify and atomically install a version (init container)"
    )
    which = pull.add_mutually_exclusive_group(required=True)
    which.add_argument("--channel")
    which.add_argument("--version")
    pull.add_argument("--dest", required=True, help="the bundle directory to fill (replaced whole)")
    pull.add_argument(
        "--without-indexes",
        action="store_true",
        help="leave out the BM25 and dense indexes: for pods whose candidates come from Milvus "
        "(RAG_RETRIEVAL_BACKEND=milvus)",
    )
    milvus = actions.add_parser(
        "publish-milvus",
        help="load a bundle version into Milvus, check it, and optionally point a channel's alias at it",
    )
    milvus.add_argument("bundle")
    milvus.add_argument(
        "--version", help="default: the version it was pulled as, else <build time>-<corpus id>"
    )
    milvus.add_argument("--channel", help="then point this channel's alias at the version")
    milvus.add_argument("--milvus-uri", help="the Milvus server (env RAG_MILVUS_URI)")
    milvus.add_argument("--json", action="store_true", help="print {collection, version, rows, created, …}")
    milvus.set_defaults(func=cmd_publish_milvus)
