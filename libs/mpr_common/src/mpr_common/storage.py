"""All S3 operations (the seed's ``core/storage.py`` contract).

The same boto3 code talks to MinIO, moto's server or AWS S3: only ``S3_ENDPOINT_URL`` differs.
Services build one client in their lifespan and pass it in; the ``client=None`` defaults exist for
scripts and the seed's call style and build a client from the environment once.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3
from botocore.config import Config

from .keys import MEDIA_EXTENSIONS, extension, is_media_key, safe_local_path, validate_key
from .s3_client import S3Client
from .settings import S3Settings

__all__ = [
    "BUCKET_IN",  # noqa: F822 - module __getattr__ reads it lazily
    "BUCKET_OUT",  # noqa: F822
    "S3Object",
    "download_file",
    "download_to_temp",
    "get_presigned_url",
    "get_s3_client",
    "head_object",
    "list_objects",
    "list_pages",
    "upload_file",
]


@dataclass(frozen=True, slots=True)
class S3Object:
    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None


def _settings(settings: S3Settings | None) -> S3Settings:
    return settings if settings is not None else _env_settings()


@functools.cache
def _env_settings() -> S3Settings:
    return S3Settings.from_env()


def __getattr__(name: str) -> str:
    # The seed exposes BUCKET_IN / BUCKET_OUT; read them lazily so that importing never reads env.
    if name == "BUCKET_IN":
        return _env_settings().bucket_in
    if name == "BUCKET_OUT":
        return _env_settings().bucket_out
    raise AttributeError(name)


def get_s3_client(settings: S3Settings | None = None) -> S3Client:
    """A boto3 S3 client for MinIO (``S3_ENDPOINT_URL`` set) or AWS (unset)."""
    s = _settings(settings)
    if settings is None:
        return _cached_client(s)
    return _make_client(s)


@functools.cache
def _cached_client(s: S3Settings) -> S3Client:
    return _make_client(s)


def _make_client(s: S3Settings, endpoint_url: str | None = None) -> S3Client:
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"} if (endpoint_url or s.endpoint_url) else {},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or s.endpoint_url,
        region_name=s.region,
        aws_access_key_id=s.access_key_id,
        aws_secret_access_key=s.secret_access_key,
        config=config,
    )


def make_public_client(settings: S3Settings) -> S3Client:
    """A client whose presigned URLs point at the public endpoint (browser-facing links)."""
    return _make_client(settings, settings.public_endpoint_url or settings.endpoint_url)


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One page of a listing: the usable media objects, and the media keys refused with the reason."""

    objects: list[S3Object]
    refused: list[tuple[str, str]]


def list_pages(
    bucket: str,
    prefix: str = "",
    extensions: frozenset[str] | None = MEDIA_EXTENSIONS,
    *,
    client: S3Client,
    page_size: int = 1000,
) -> Iterator[ListedPage]:
    """Yield a bucket's listing page by page (``extensions=None`` keeps every object). A key that
    fails validation is never processed, but it is reported, not silently dropped."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}):
        objects: list[S3Object] = []
        refused: list[tuple[str, str]] = []
        for item in page.get("Contents", ()):
            key = item["Key"]
            if extensions is not None and not is_media_key(key, extensions):
                continue
            try:
                validate_key(key)
            except ValueError as exc:
                refused.append((key, str(exc)))
                continue
            objects.append(
                S3Object(
                    bucket=bucket,
                    key=key,
                    size=int(item.get("Size", 0)),
                    etag=str(item.get("ETag", "")).strip('"'),
                    last_modified=item.get("LastModified"),
                )
            )
        yield ListedPage(objects, refused)


def list_objects(
    bucket: str | None = None,
    prefix: str = "",
    extensions: frozenset[str] | None = MEDIA_EXTENSIONS,
    *,
    client: S3Client | None = None,
    settings: S3Settings | None = None,
    page_size: int = 1000,
) -> Iterator[S3Object]:
    """Yield the objects under ``prefix`` page by page, keeping supported media extensions.

    ``extensions=None`` keeps every object. Keys that fail validation are skipped: they can
    never be processed safely (:func:`list_pages` reports them).
    """
    s = _settings(settings)
    client = client or get_s3_client(settings)
    for page in list_pages(bucket or s.bucket_in, prefix, extensions, client=client, page_size=page_size):
        yield from page.objects


def head_object(
    key: str, bucket: str | None = None, *, client: S3Client | None = None, settings: S3Settings | None = None
) -> S3Object:
    s = _settings(settings)
    client = client or get_s3_client(settings)
    bucket = bucket or s.bucket_in
    head = client.head_object(Bucket=bucket, Key=validate_key(key))
    return S3Object(
        bucket=bucket,
        key=key,
        size=int(head.get("ContentLength", 0)),
        etag=str(head.get("ETag", "")).strip('"'),
        last_modified=head.get("LastModified"),
    )


def download_file(
    key: str,
    local_path: str | Path,
    bucket: str | None = None,
    *,
    client: S3Client | None = None,
    settings: S3Settings | None = None,
) -> Path:
    """Download ``key`` to ``local_path`` (the key is validated first)."""
    validate_key(key)
    s = _settings(settings)
    client = client or get_s3_client(settings)
    path = Path(local_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    client.download_file(bucket or s.bucket_in, key, str(path))
    return path


def download_to_temp(
    key: str,
    bucket: str | None = None,
    *,
    client: S3Client | None = None,
    settings: S3Settings | None = None,
    dir: str | Path | None = None,
) -> Path:
    """Download ``key`` to a new temporary file keeping its extension; the caller removes it."""
    validate_key(key)
    fd, name = tempfile.mkstemp(prefix="mpr-", suffix=extension(key), dir=dir)
    os.close(fd)
    try:
        return download_file(key, name, bucket, client=client, settings=settings)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def download_key_into(
    key: str,
    base_dir: str | Path,
    bucket: str | None = None,
    *,
    client: S3Client | None = None,
    settings: S3Settings | None = None,
) -> Path:
    """Download ``key`` to its own path below ``base_dir`` (never outside it)."""
    return download_file(key, safe_local_path(base_dir, key), bucket, client=client, settings=settings)


def upload_file(
    local_path: str | Path,
    key: str,
    bucket: str | None = None,
    *,
    client: S3Client | None = None,
    settings: S3Settings | None = None,
    content_type: str | None = None,
) -> str:
    """Upload a local file to ``key`` (default bucket: ``S3_BUCKET_OUT``); returns the key."""
    validate_key(key)
    s = _settings(settings)
    client = client or get_s3_client(settings)
    content_type = content_type or guess_content_type(key)
    client.upload_file(str(local_path), bucket or s.bucket_out, key, ExtraArgs={"ContentType": content_type})
    return key


def get_presigned_url(
    key: str,
    bucket: str | None = None,
    expires: int | None = None,
    *,
    client: S3Client | None = None,
    settings: S3Settings | None = None,
    method: str = "get_object",
) -> str:
    """A time-limited URL for ``key`` (default bucket: ``S3_BUCKET_IN``)."""
    validate_key(key)
    s = _settings(settings)
    client = client or get_s3_client(settings)
    return client.generate_presigned_url(
        method,
        Params={"Bucket": bucket or s.bucket_in, "Key": key},
        ExpiresIn=expires or s.presign_ttl,
    )


_EXTRA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mpd": "application/dash+xml",
    ".vtt": "text/vtt",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".webm": "video/webm",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


def guess_content_type(key: str) -> str:
    ext = extension(key)
    return _EXTRA_TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def ensure_buckets(client: S3Client, *buckets: str) -> None:
    """Create missing buckets (embedded default and tests; minio-init does this in compose)."""
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
