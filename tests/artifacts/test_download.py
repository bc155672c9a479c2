"""`rag artifacts download`: a corpus kept under an S3 prefix, copied whole into a folder (real S3 server)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from rag.artifacts import S3Location, S3Store, download_prefix
from rag.cli import main
from rag.errors import ArtifactError, ArtifactNotFound


def test_every_object_under_the_prefix_lands_at_its_relative_path(
    s3_server: str, bucket: str, tmp_path: Path, capsys
) -> None:
    client = boto3.client("s3", endpoint_url=s3_server)
    for key, body in {
        "corpus/a.md": b"# A",
        "corpus/deep/b.txt": b"B",
        "corpus/": b"",  # a console-made "folder" marker
        "corpus-other/c.txt": b"not ours",
    }.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    dest = tmp_path / "corpus"
    store = S3Store(S3Location(bucket, "corpus"), endpoint_url=s3_server)
    assert download_prefix(store, dest) == ["a.md", "deep/b.txt"]
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == {
        "a.md": b"# A",
        "deep/b.txt": b"B",
    }
    code = main(
        [
            "artifacts",
            "download",
            f"s3://{bucket}/corpus",
            "--dest",
            str(tmp_path / "cli"),
            "--endpoint-url",
            s3_server,
        ]
    )
    assert code == 0 and "downloaded 2 object(s)" in capsys.readouterr().out
    with pytest.raises(ArtifactNotFound, match="no objects under"):
        download_prefix(S3Store(S3Location(bucket, "empty"), endpoint_url=s3_server), tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_a_key_that_would_leave_the_destination_is_refused(
    s3_server: str, bucket: str, tmp_path: Path
) -> None:
    client = boto3.client("s3", endpoint_url=s3_server)
    client.put_object(Bucket=bucket, Key="corpus/ok.txt", Body=b"x")
    client.put_object(Bucket=bucket, Key="corpus/../escape.txt", Body=b"x")
    listed = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="corpus/")["Contents"]]
    if "corpus/../escape.txt" not in listed:
        pytest.fail(f"the S3 server normalised the key; listed: {listed}")
    with pytest.raises(ArtifactError, match="would leave the destination"):
        download_prefix(S3Store(S3Location(bucket, "corpus"), endpoint_url=s3_server), tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "escape.txt").exists()
