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


def cmd_promote(args: argparse.Namespace) -> int:
    from .. import artifacts

    channel = artifacts.promote(_store(args), args.version, args.channel)
    print(f"channel {channel.name}: {channel.previous} → {channel.version}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from .. import artifacts

    channel = artifacts.rollback(_store(args), args.channel)
    print(f"channel {channel.name}: {channel.previous} → {channel.version} (rolled back)")
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

    result = artifacts.pull_bundle(_store(args), Path(args.dest), version=args.version, channel=args.channel)
    state = "pulled and verified" if result.downloaded else "already present, verified"
    print(f"{state}: {result.version} → {result.path}")
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
