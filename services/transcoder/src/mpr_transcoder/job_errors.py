"""How a job fails: :class:`JobError` with its reason and whether another attempt may succeed, and what
a storage or FFmpeg failure means for the job. Errors name the source by its key: never a presigned URL
(``mpr_common.mediainfo.redact``)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mpr_common.events import FailureReason
from mpr_common.mediainfo import looks_like_network_error, redact

from .ffmpeg import (
    FfmpegError,
    FfmpegKilled,
    FfmpegOutOfMemory,
    FfmpegSourceGap,
    FfmpegStalled,
    FfmpegTimeout,
)
from .settings import setting

if TYPE_CHECKING:
    from .limits import Limits


class JobError(Exception):
    """A job that failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, reason: FailureReason, retryable: bool = False, log: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
        self.log = log  # FFmpeg's stderr tail, when FFmpeg failed


def is_missing(exc: ClientError) -> bool:
    """Whether S3 answered that the object does not exist."""
    return str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound")


def storage_error(exc: Exception) -> JobError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if is_missing(exc):
            return JobError("source object not found", "source", retryable=False)
        if code in ("NoSuchBucket",):
            return JobError(redact(f"bucket not found: {exc}"), "storage", retryable=False)
        if status in (400, 403) and code not in ("RequestTimeout", "SlowDown"):
            return JobError(f"storage refused the request: {code}", "storage", retryable=False)
    return JobError(redact(f"storage unavailable: {exc}"), "storage", retryable=True)


# Signals that end FFmpeg from outside (the OOM killer sends SIGKILL): another attempt may succeed. Any
# other signal is a crash, which the same input repeats.
_EXTERNAL_KILLS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def ffmpeg_error(exc: FfmpegError, limits: Limits) -> JobError:
    """What a failed FFmpeg run means for the job (the runner stopped it, or it failed by itself), with
    FFmpeg's stderr tail for the attempts log."""
    err = _ffmpeg_verdict(exc, limits)
    err.log = exc.tail[-8000:]
    return err


def _ffmpeg_verdict(exc: FfmpegError, limits: Limits) -> JobError:
    if isinstance(exc, FfmpegSourceGap):
        return JobError(f"source is not playable: {exc}", "source")
    if isinstance(exc, FfmpegStalled):
        return JobError(
            f"FFmpeg made no progress for {limits.stall_timeout:.12g}s "
            f"(limit {setting('stall_timeout', limits.stall_timeout)}s): the source's timestamps may jump "
            "far ahead (frames hours apart) or a decoder hung",
            "timeout",
        )
    if isinstance(exc, FfmpegTimeout):
        return JobError(f"{exc} (limit {setting('job_timeout', limits.job_timeout)}s)", "timeout")
    if isinstance(exc, FfmpegOutOfMemory):
        if limits.ffmpeg_max_memory:
            limit = setting("ffmpeg_max_memory", limits.ffmpeg_max_memory)
            mib = limits.ffmpeg_max_memory / 1024**2
            message = f"FFmpeg ran out of memory under its address-space limit {limit} ({mib:.0f} MiB)"
            return JobError(f"{message}: {exc.tail}"[:2000], "ffmpeg")
        return JobError(f"FFmpeg ran out of memory: {exc.tail}"[:2000], "internal", retryable=True)
    if isinstance(exc, FfmpegKilled):
        if -(exc.returncode or 0) in _EXTERNAL_KILLS:
            return JobError(
                f"FFmpeg was killed by {exc.signal_name}, probably out of memory (the kernel's OOM killer "
                "at the container's memory limit); another attempt follows",
                "internal",
                retryable=True,
            )
        return JobError(f"FFmpeg crashed ({exc.signal_name})\n{exc.tail}"[:2000], "ffmpeg")
    if looks_like_network_error(exc.tail):
        return JobError(f"reading the source failed: {exc.tail[-500:]}", "storage", retryable=True)
    return JobError(f"{exc}\n{exc.tail}"[-2000:], "ffmpeg")
