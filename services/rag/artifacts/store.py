"""S3 access for bundle artifacts: one client, every call retried with backoff until a deadline.

Any S3-compatible endpoint works (`RAG_S3_ENDPOINT_URL`, or boto3's own `AWS_ENDPOINT_URL`); credentials
come from boto3's default chain (environment, profile, web identity for IRSA). boto3 is imported here only,
so serving without artifacts needs none of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ArtifactNotFound, StorageUnavailable

__all__ = ["S3Location", "S3Store"]

T = TypeVar("T")

_MB = 1 << 20
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_FATAL = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "400", "InvalidBucketName"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        from ..errors import ConfigError

        if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
            raise ConfigError(f"not an S3 URI (s3://bucket/prefix): {uri!r}")
        bucket, _, prefix = uri[5:].partition("/")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class S3Store:
    """get/put/list/head on one bucket, each call retried on transient errors until `deadline_seconds`
    (counted from this object's creation: a pull as a whole must finish in time, not each call)."""

    def __init__(
        self,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        deadline_seconds: float = 300.0,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.location = location
        self.deadline = time.monotonic() + deadline_seconds
        self.deadline_seconds = deadline_seconds
        self._sleep = sleep
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 1}),
            )
        self.client = client

    # ---- retries ----------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            NoRegionError,
            ParamValidationError,
            PartialCredentialsError,
        )

        # Raised before any request leaves: no retry can change them, so they fail at once, saying why.
        permanent = (NoCredentialsError, PartialCredentialsError, NoRegionError, ParamValidationError)

        attempt = 0
        while True:
            try:
                return fn()
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in _NOT_FOUND:
                    raise ArtifactNotFound(f"{what}: not found in {self.location}") from None
                if code in _FATAL:
                    raise StorageUnavailable(f"{what}: {code} from S3 ({self.location})") from None
                error: Exception = exc
            except permanent as exc:
                raise StorageUnavailable(f"{what}: {exc} ({self.location})") from None
            except (BotoCoreError, OSError) as exc:
                error = exc
            attempt += 1
            # Exponential backoff with full jitter (AWS architecture blog), capped, within the deadline.
            delay = random.uniform(0, min(5.0, 0.2 * 2**attempt))
            if time.monotonic() + delay > self.deadline:
                raise StorageUnavailable(
                    f"{what}: S3 unreachable for {self.deadline_seconds:g} s ({type(error).__name__}: {error})"
                ) from None
            self._sleep(delay)

    # ---- operations ---------------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            body: bytes = self.client.get_object(Bucket=self.location.bucket, Key=key)["Body"].read()
            return body

        return self._call(key, get)

    def exists(self, key: str) -> bool:
        try:
            self._call(key, lambda: self.client.head_object(Bucket=self.location.bucket, Key=key))
        except ArtifactNotFound:
            return False
        return True

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        self._call(
            key,
            lambda: self.client.put_object(
                Bucket=self.location.bucket, Key=key, Body=data, ContentType=content_type
            ),
        )

    def upload_file(self, path: Path, key: str) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=64 * _MB, multipart_chunksize=64 * _MB)
        self._call(key, lambda: self.client.upload_file(str(path), self.location.bucket, key, Config=config))

    def download_file(self, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=64 * _MB, multipart_chunksize=64 * _MB)
        self._call(
            key, lambda: self.client.download_file(self.location.bucket, key, str(path), Config=config)
        )

    def list_prefixes(self, key_prefix: str) -> list[str]:
        """The 'folders' directly under `key_prefix/`."""

        def page_through() -> list[str]:
            out: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.location.bucket, Prefix=key_prefix + "/", Delimiter="/"
            ):
                out.extend(
                    p["Prefix"][len(key_prefix) + 1 :].rstrip("/") for p in page.get("CommonPrefixes", [])
                )
            return out

        return self._call(key_prefix, page_through)

    def list_keys(self, key_prefix: str) -> list[str]:
        """Keys under `key_prefix/` relative to it (an empty prefix: the whole bucket)."""
        prefix = f"{key_prefix}/" if key_prefix else ""

        def page_through() -> list[str]:
            out: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                out.extend(o["Key"][len(prefix) :] for o in page.get("Contents", []))
            return out

        return self._call(key_prefix, page_through)
