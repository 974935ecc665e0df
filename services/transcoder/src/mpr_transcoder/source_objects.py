"""Objects of a job's source bucket made ready for FFmpeg: a presigned URL after a HEAD, for the source
itself (:func:`locate`) and for the files a job reads beside it, a watermark's image or a subtitle file
(:func:`locate_side_file`), whose absence or size is the request's fault."""

from __future__ import annotations

import asyncio

from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.s3_client import S3Client
from mpr_common.storage import S3Object, get_presigned_url, head_object

from .job_errors import JobError, is_missing, storage_error

URL_SECONDS = 6 * 3600  # how long FFmpeg may read through a presigned URL: a long job's whole run


async def locate(s3: S3Client, bucket: str, key: str) -> tuple[S3Object, str]:
    """The object's HEAD and a presigned URL of it (boto3's errors raised as they come)."""
    head = await asyncio.to_thread(head_object, key, bucket, client=s3)
    url = await asyncio.to_thread(get_presigned_url, key, bucket, URL_SECONDS, client=s3)
    return head, url


async def locate_side_file(s3: S3Client, bucket: str, key: str, *, what: str, max_bytes: int) -> str:
    """A presigned URL of ``key``, a file the job reads beside its source (``what`` names it in the job's
    error: "watermark: the image"), once it is found and at most ``max_bytes`` long: else the job fails
    as invalid with the reason (a storage error as any other)."""
    try:
        head, url = await locate(s3, bucket, key)
    except ClientError as exc:
        if is_missing(exc):
            raise JobError(f"{what} {key!r} is not in bucket {bucket!r}", "invalid") from None
        raise storage_error(exc) from None
    except BotoCoreError as exc:
        raise storage_error(exc) from None
    if head.size > max_bytes:
        raise JobError(f"{what} {key!r} has {head.size} bytes, more than {max_bytes}", "invalid")
    return url
