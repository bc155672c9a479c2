"""`rag ingest --server URL CORPUS`: start an ingestion job on a server and tail it with a progress bar.

Exit 0 when the job succeeded (and, with --activate, is served), 1 when it failed (the reason on stderr),
2 on any other error (server unreachable, refused request), as everywhere in `rag`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any, get_args

from ..config import DenseKind, load_settings
from ..errors import RagError
from .common import Subcommands

__all__ = ["add_parser"]


def _call(method: str, url: str, key: str, body: dict[str, Any] | None = None, timeout: float = 60.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("x-admin-key", key)
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise RagError(f"{method} {url}: {exc.code} {message}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RagError(f"{method} {url}: {getattr(exc, 'reason', exc)}") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    server = args.server.rstrip("/")
    key = args.admin_key or (
        secret.get_secret_value() if (secret := load_settings().admin_key) is not None else ""
    )
    if not key:
        raise RagError("the ingest API needs the admin key: --admin-key or RAG_ADMIN_KEY")
    body = {"corpus": args.corpus, "unit": args.unit, "dense_index": args.dense_index}
    job = _call("POST", f"{server}/ingest/start", key, {k: v for k, v in body.items() if v is not None})
    print(f"job {job['id']} started on {server}", file=sys.stderr)
    bar = tqdm(total=100, desc="queued", unit="%", disable=args.quiet, bar_format="{l_bar}{bar}| {postfix}")
    try:
        while job["state"] in ("queued", "running"):
            time.sleep(args.interval)
            job = _call("GET", f"{server}/ingest/status/{job['id']}", key)
            bar.set_description(job.get("stage") or job["state"])
            bar.set_postfix_str(f"{job['done']}/{job['total']}" if job["total"] else "")
            bar.update(round(job["progress"] * 100) - bar.n)
    finally:
        bar.close()
    if job["state"] != "succeeded":
        print(f"rag: job {job['id']} failed: {job['error']}", file=sys.stderr)
        return 1
    for warning in job.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    counts = job["counts"]
    print(
        f"job {job['id']} succeeded: {counts.get('documents', 0)} documents, {counts.get('units', 0)} units, "
        f"{counts.get('embedded', 0)} embedded, {counts.get('cache_hits', 0)} from cache → {job['bundle']}"
    )
    if args.activate:
        live = _call("POST", f"{server}/ingest/activate/{job['id']}", key, timeout=600)
        print(f"serving {live['version']}")
    return 0


def add_parser(sub: Subcommands) -> None:
    ingest = sub.add_parser("ingest", help="start an ingestion job on a server and follow it (progress bar)")
    ingest.add_argument("corpus", metavar="CORPUS", help="a path on the server, or s3://bucket/prefix")
    ingest.add_argument("--server", required=True, help="the server's base URL, e.g. http://localhost:8000")
    ingest.add_argument("--admin-key", help="default: RAG_ADMIN_KEY")
    ingest.add_argument("--unit", choices=["sentence", "passage", "document"])
    ingest.add_argument("--dense-index", choices=get_args(DenseKind))
    ingest.add_argument("--activate", action="store_true", help="serve the bundle once the job succeeded")
    ingest.add_argument("--interval", type=float, default=0.5, help="seconds between status polls")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(func=cmd_ingest)
