"""A job's watermark made ready to draw: an image is found in the job's source bucket, bounded in size and
probed as a PNG or JPEG through the image demuxers only (never trusted by its name), and handed to FFmpeg
as a presigned URL; a text is written to a file of the job's work dir (``drawtext`` reads it there, so the
text never enters a filter graph). What is wrong with it fails the job with the reason, never retried."""

from __future__ import annotations

from pathlib import Path

from mpr_common.events import JobRequested
from mpr_common.mediainfo import ProbeError, looks_like_network_error
from mpr_common.overlays import MAX_WATERMARK_BYTES, MAX_WATERMARK_SIDE, WATERMARK_FORMATS
from mpr_common.s3_client import S3Client
from mpr_common.settings import S3Settings

from .ffmpeg.filtergraph import WatermarkSource
from .ffmpeg.probe import probe_image
from .job_errors import JobError
from .limits import Limits
from .source_objects import locate_side_file

TEXT_FILE = "watermark.txt"


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
    url = await locate_side_file(
        s3, bucket, spec.key, what="watermark: the image", max_bytes=MAX_WATERMARK_BYTES
    )
    await _check_image(url, spec.key, limits)
    return WatermarkSource(spec, image_url=url)


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
