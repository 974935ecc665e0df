"""A job's watermark made ready to draw: an image is found in the job's source bucket, bounded in size and
probed as a PNG or JPEG through the image demuxers only (never trusted by its name), and handed to FFmpeg
as a presigned URL; a text is written to a file of the job's work dir (``drawtext`` reads it there, so the
text never enters a filter graph). What is wrong with it fails the job with the reason, never retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.events import JobRequested
from mpr_common.mediainfo import ProbeError, looks_like_network_error
from mpr_common.overlays import MAX_WATERMARK_BYTES, MAX_WATERMARK_SIDE, WATERMARK_FORMATS
from mpr_common.s3_client import S3Client
from mpr_common.settings import S3Settings
from mpr_common.storage import get_presigned_url, head_object

from .ffmpeg.filtergraph import WatermarkSource
from .ffmpeg.probe import probe_image
from .job_errors import JobError, storage_error
from .limits import Limits

TEXT_FILE = "watermark.txt"


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


async def prepare_watermark(
    job: JobRequested, tmp: Path, *, s3: S3Client, s3_settings: S3Settings, limits: Limits
) -> WatermarkSource | None:
    """What draws ``job``'s (normalised) watermark, None when it has none."""
    spec = job.watermark
    if spec is None:
        return None
    if spec.text is not None:
        path = tmp / TEXT_FILE
        path.write_text(spec.text, encoding="utf-8")
        return WatermarkSource(spec, text_file=path)
    assert spec.key is not None
    bucket = job.source_bucket or s3_settings.bucket_in
    url = await _locate(spec.key, bucket, s3)
    await _check_image(url, spec.key, limits)
    return WatermarkSource(spec, image_url=url)


async def _locate(key: str, bucket: str, s3: S3Client) -> str:
    """A presigned URL of the image, after its size is checked."""
    try:
        head = await asyncio.to_thread(head_object, key, bucket, client=s3)
        url = await asyncio.to_thread(get_presigned_url, key, bucket, 6 * 3600, client=s3)
    except ClientError as exc:
        if _missing(exc):
            raise JobError(f"watermark: the image {key!r} is not in bucket {bucket!r}", "invalid") from None
        raise storage_error(exc) from None
    except BotoCoreError as exc:
        raise storage_error(exc) from None
    if head.size > MAX_WATERMARK_BYTES:
        raise JobError(
            f"watermark: the image {key!r} has {head.size} bytes, more than {MAX_WATERMARK_BYTES}", "invalid"
        )
    return url


async def _check_image(url: str, key: str, limits: Limits) -> None:
    """The image is a PNG or JPEG picture (as FFmpeg reads it), of bounded size."""
    try:
        image = await probe_image(url, limits.probe_timeout, name=key)
    except ProbeError as exc:
        if looks_like_network_error(str(exc)):
            raise JobError(f"reading the watermark failed: {exc}", "storage", retryable=True) from None
        raise JobError(f"watermark: {key!r} is not a PNG or JPEG image ({exc})", "invalid") from None
    if image.format_name not in WATERMARK_FORMATS:
        raise JobError(f"watermark: {key!r} is not a PNG or JPEG image", "invalid")
    if max(image.width, image.height) > MAX_WATERMARK_SIDE:
        raise JobError(
            f"watermark: the image {key!r} is {image.width}x{image.height}, above "
            f"{MAX_WATERMARK_SIDE} pixels a side",
            "invalid",
        )
