"""Bundle artifacts against a real S3 server (moto's server mode) on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from rag_testkit.tools import TcpProxy

from rag.artifacts import S3Location, S3Store, list_artifacts, promote, pull_bundle, push_bundle, rollback
from rag.errors import ArtifactConflict, ArtifactNotFound, BundleCorrupt, StorageUnavailable
from rag.index import Bundle, read_manifest, verify_bundle


def store(endpoint: str, bucket: str, deadline: float = 30.0) -> S3Store:
    return S3Store(S3Location(bucket, "team/rag"), endpoint_url=endpoint, deadline_seconds=deadline)


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_push_pull_round_trip_is_byte_identical_and_versions_are_immutable(
    s3_server: str, bucket: str, sample_bundle: Path, other_bundle: Path, tmp_path: Path
) -> None:
    s3 = store(s3_server, bucket)
    version, uploaded = push_bundle(s3, sample_bundle)
    assert uploaded and version.endswith(read_manifest(sample_bundle).corpus_id[:12])
    dest = tmp_path / "served" / "bundle"
    result = pull_bundle(s3, dest, version=version)
    assert result.downloaded
    pulled = tree(dest)
    assert pulled.pop("artifact.json")  # where it came from, beside the manifest
    assert pulled == tree(sample_bundle)
    # a second push of the same bytes is a no-op; other bytes under that version are refused
    assert push_bundle(s3, sample_bundle, version) == (version, False)
    with pytest.raises(ArtifactConflict, match="immutable"):
        push_bundle(s3, other_bundle, version)
    # pulling what DEST already holds downloads nothing
    assert not pull_bundle(s3, dest, version=version).downloaded
    with pytest.raises(ArtifactNotFound, match="unknown version nope"):
        pull_bundle(s3, tmp_path / "x", version="nope")


def test_a_pull_without_indexes_leaves_out_bm25_and_the_dense_index(
    s3_server: str, bucket: str, sample_bundle: Path, tmp_path: Path
) -> None:
    """`rag artifacts pull --without-indexes`, the init container's pull with retrieval.backend=milvus: every
    other file is there and verified; the bundle loads without its indexes and refuses to load with them."""
    s3 = store(s3_server, bucket)
    push_bundle(s3, sample_bundle, "v1")
    dest = tmp_path / "thin"
    assert pull_bundle(s3, dest, version="v1", indexes=False).downloaded
    pulled, full = tree(dest), tree(sample_bundle)
    left_out = set(full) - set(pulled)
    assert "dense.faiss" in left_out and any(name.startswith("bm25/") for name in left_out)
    assert all(name == "dense.faiss" or name.startswith("bm25/") for name in left_out), left_out
    assert all(pulled[name] == full[name] for name in set(full) & set(pulled))
    assert Bundle.load(dest, indexes=False).seg.n_units == Bundle.load(sample_bundle).seg.n_units
    with pytest.raises(BundleCorrupt, match="is missing"):
        Bundle.load(dest)
    assert not pull_bundle(s3, dest, version="v1", indexes=False).downloaded  # what DEST holds is enough
    assert pull_bundle(s3, dest, version="v1").downloaded  # and the whole bundle when asked for it
    assert tree(dest).keys() - {"artifact.json"} == full.keys()


def test_promote_and_rollback_move_the_channel(
    s3_server: str, bucket: str, sample_bundle: Path, other_bundle: Path, tmp_path: Path
) -> None:
    s3 = store(s3_server, bucket)
    push_bundle(s3, sample_bundle, "v1")
    push_bundle(s3, other_bundle, "v2")
    with pytest.raises(ArtifactNotFound):
        promote(s3, "v9", "stable")
    assert promote(s3, "v1", "stable").previous is None
    moved = promote(s3, "v2", "stable")
    assert (moved.version, moved.previous, moved.history) == ("v2", "v1", ["v1"])
    assert "@" in moved.updated_by and moved.updated_at.endswith("Z")  # who and when
    assert pull_bundle(s3, tmp_path / "b", channel="stable").version == "v2"
    assert read_manifest(tmp_path / "b").corpus_id == read_manifest(other_bundle).corpus_id
    back = rollback(s3, "stable")
    assert (back.version, back.previous) == ("v1", "v2")
    with pytest.raises(ArtifactNotFound, match="no earlier version"):
        rollback(s3, "stable")
    listing = list_artifacts(s3)
    assert listing["versions"] == ["v1", "v2"] and listing["channels"]["stable"]["version"] == "v1"


def test_corrupted_object_fails_the_pull_naming_the_file_and_leaves_dest_untouched(
    s3_server: str, bucket: str, sample_bundle: Path, other_bundle: Path, tmp_path: Path
) -> None:
    s3 = store(s3_server, bucket)
    push_bundle(s3, sample_bundle, "good")
    push_bundle(s3, other_bundle, "bad")
    dest = tmp_path / "bundle"
    pull_bundle(s3, dest, version="good")
    before = tree(dest)
    # same size, other bytes: S3's own ETag is recomputed by the server, only our manifest can tell
    key = "team/rag/bundles/bad/dense.faiss"
    client = boto3.client("s3", endpoint_url=s3_server)
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-1] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    with pytest.raises(BundleCorrupt, match=r"dense\.faiss of version bad does not match its SHA-256"):
        pull_bundle(s3, dest, version="bad")
    assert tree(dest) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle.") and p.is_dir()] == []


def test_manifest_with_an_escaping_path_is_refused_before_anything_is_written(
    s3_server: str, bucket: str, sample_bundle: Path, tmp_path: Path
) -> None:
    import json

    manifest = json.loads((sample_bundle / "manifest.json").read_text())
    manifest["files"]["../evil"] = {"sha256": "0" * 64, "bytes": 1}
    client = boto3.client("s3", endpoint_url=s3_server)
    client.put_object(
        Bucket=bucket, Key="team/rag/bundles/evil/manifest.json", Body=json.dumps(manifest).encode()
    )
    with pytest.raises(BundleCorrupt, match="unsafe path"):
        pull_bundle(store(s3_server, bucket), tmp_path / "bundle", version="evil")
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "evil").exists()


def test_pull_waits_for_s3_within_the_deadline_and_fails_cleanly_past_it(
    s3_server: str, bucket: str, sample_bundle: Path, tmp_path: Path
) -> None:
    push_bundle(store(s3_server, bucket), sample_bundle, "v1")
    port = int(s3_server.rsplit(":", 1)[1])
    late = TcpProxy(port)  # S3 is "down" until the proxy listens
    starter = threading.Timer(2.0, late.start)
    starter.start()
    started = time.monotonic()
    try:
        result = pull_bundle(store(late.url, bucket, deadline=20), tmp_path / "a", version="v1")
    finally:
        starter.cancel()
        late.stop()
    assert result.downloaded and time.monotonic() - started >= 2.0
    verify_bundle(tmp_path / "a", read_manifest(tmp_path / "a"))

    never = TcpProxy(port)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="unreachable for 2 s"):
        pull_bundle(store(never.url, bucket, deadline=2), tmp_path / "b", version="v1")
    assert time.monotonic() - started < 10 and not (tmp_path / "b").exists()


def test_pull_killed_mid_download_never_leaves_a_partial_bundle(
    s3_server: str, bucket: str, sample_bundle: Path, other_bundle: Path, tmp_path: Path
) -> None:
    s3 = store(s3_server, bucket)
    push_bundle(s3, other_bundle, "old")
    push_bundle(s3, sample_bundle, "new")
    dest = tmp_path / "bundle"
    pull_bundle(s3, dest, version="old")
    total = sum(f.stat().st_size for f in sample_bundle.rglob("*") if f.is_file())
    slow = TcpProxy(int(s3_server.rsplit(":", 1)[1]), bytes_per_second=total / 4)  # ~4 s for the bundle
    slow.start()
    env = {
        **os.environ,
        "RAG_S3_ENDPOINT_URL": slow.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [
        *(sys.executable, "-m", "rag.cli", "artifacts", "pull"),
        *("--uri", f"s3://{bucket}/team/rag", "--version", "new", "--dest", str(dest)),
    ]
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not any(p.name.startswith(".bundle.") and p.is_dir() for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and process.poll() is None, process.returncode
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        slow.stop()
    # DEST still holds the old version, whole and verified; the half-filled work directory is beside it
    assert read_manifest(dest).corpus_id == read_manifest(other_bundle).corpus_id
    verify_bundle(dest, read_manifest(dest))
    done = subprocess.run(
        [*command[:-2], "--dest", str(dest)],
        env={**env, "RAG_S3_ENDPOINT_URL": s3_server},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "pulled and verified: new" in done.stdout
    assert tree(dest).keys() - {"artifact.json"} == tree(sample_bundle).keys()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.") and p.is_dir()] == []


def test_cli_errors_are_one_line_with_exit_2(s3_server: str, bucket: str, tmp_path: Path) -> None:
    env = {**os.environ, "RAG_S3_ENDPOINT_URL": s3_server}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "rag.cli", "artifacts", "pull", "--uri", f"s3://{bucket}/x"),
            *("--version", "v0", "--dest", str(tmp_path / "d")),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "unknown version v0" in done.stderr
