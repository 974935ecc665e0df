"""One job from request to uploaded output: the core shared by the NATS worker and the Lambda handler."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.events import FailureReason, JobRequested, MediaInfo
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.mediainfo import ProbeError, looks_like_network_error, probe
from mpr_common.presets import PRESETS
from mpr_common.settings import S3Settings
from mpr_common.storage import get_presigned_url, head_object

from .ffmpeg_command import build_plan
from .ffmpeg_runner import (
    FfmpegCancelled,
    FfmpegError,
    FfmpegTimeout,
    ProgressReport,
    run_ffmpeg,
)
from .uploader import STORAGE_ERRORS, OutputUploader

log = logging.getLogger("mpr.transcoder")


class JobError(Exception):
    """A job that failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, reason: FailureReason, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


@dataclass(slots=True)
class Outcome:
    output_bucket: str
    output_key: str
    output_keys: list[str] = field(default_factory=list)
    output_size: int = 0
    duration: float | None = None
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Limits:
    job_timeout: float = 6 * 3600.0
    probe_timeout: float = 60.0
    max_output_bytes: int = 50 * 1024**3


def _storage_error(exc: Exception) -> JobError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("404", "NoSuchKey", "NotFound"):
            return JobError("source object not found", "source", retryable=False)
        if code in ("NoSuchBucket",):
            return JobError(f"bucket not found: {exc}", "storage", retryable=False)
        if status in (400, 403) and code not in ("RequestTimeout", "SlowDown"):
            return JobError(f"storage refused the request: {code}", "storage", retryable=False)
    return JobError(f"storage unavailable: {exc}", "storage", retryable=True)


async def run_job(
    job: JobRequested,
    *,
    s3: Any,
    s3_settings: S3Settings,
    workdir: str | Path,
    on_progress: Callable[[float, ProgressReport], None],
    cancelled: asyncio.Event | None = None,
    limits: Limits = Limits(),
    known_info: Callable[[str, str, str], Awaitable[MediaInfo | None]] | None = None,
) -> Outcome:
    """Validate, probe, run FFmpeg on a presigned URL of the source, upload the outputs.

    ``known_info(bucket, key, etag)`` may return the source's metadata probed earlier (the catalog's,
    see ``source_info.catalog_probe``) to save running ffprobe; None means unknown.
    """
    started = time.monotonic()
    try:
        job = normalize_job(job)
    except JobRequestError as exc:
        raise JobError(str(exc), "invalid") from None
    preset = PRESETS[job.preset or ""]
    src_bucket = job.source_bucket or s3_settings.bucket_in
    out_bucket = job.output_bucket or s3_settings.bucket_out
    assert job.output_key

    try:
        head = await asyncio.to_thread(head_object, job.source_key, src_bucket, client=s3)
        url = await asyncio.to_thread(get_presigned_url, job.source_key, src_bucket, 6 * 3600, client=s3)
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error(exc) from None

    info = await _known_info(known_info, src_bucket, job.source_key, head.etag)
    if info is None:
        info = await _probe(url, limits.probe_timeout)

    tmp = Path(tempfile.mkdtemp(prefix=f"job-{job.job_id}-", dir=_ensure_dir(workdir)))
    try:
        try:
            plan = build_plan(job, preset, url, info, tmp / "out", limits.max_output_bytes)
        except ValueError as exc:
            raise JobError(str(exc), "invalid") from None
        expected = plan.expected_duration
        written = [0.0]

        def progress(rep: ProgressReport) -> None:
            if rep.out_time is not None:
                written[0] = max(written[0], rep.out_time)
            if rep.done:
                pct = 100.0
            elif expected and rep.out_time is not None:
                pct = min(99.0, 100.0 * rep.out_time / expected)
            else:
                pct = 0.0
            on_progress(pct, rep)

        # FFmpeg stops on a cancel request, and also when an upload running beside it failed: the
        # job fails (and is retried) now rather than after hours of encoding.
        stop = asyncio.Event()
        relay = asyncio.create_task(_relay(cancelled, stop)) if cancelled is not None else None
        uploader = OutputUploader(s3, out_bucket, plan, job.output_key, on_error=stop.set)
        try:
            async with uploader:  # uploads while FFmpeg writes; cleans up if anything below raises
                try:
                    await run_ffmpeg(plan.args, progress, timeout=limits.job_timeout, cancelled=stop)
                except FfmpegCancelled:
                    if uploader.error is not None and not (cancelled is not None and cancelled.is_set()):
                        raise uploader.error from None
                    raise JobError("cancelled by request", "cancelled") from None
                except FfmpegTimeout as exc:
                    raise JobError(f"{exc}", "timeout") from None
                except FfmpegError as exc:
                    if looks_like_network_error(exc.tail):
                        raise JobError(
                            f"reading the source failed: {exc.tail[-500:]}", "storage", retryable=True
                        ) from None
                    raise JobError(f"{exc}\n{exc.tail}"[-2000:], "ffmpeg") from None

                if expected and written[0] < expected - max(1.0, 0.05 * expected):
                    raise JobError(
                        f"source is truncated or damaged: FFmpeg wrote {written[0]:.1f}s of the "
                        f"{expected:.1f}s the source declares",
                        "source",
                    )
                if not plan.main_output.exists() or plan.main_output.stat().st_size == 0:
                    raise JobError("ffmpeg produced no output (empty range or no decodable frames)", "ffmpeg")
                uploads = await uploader.finish()  # segments first, the main output last
        except STORAGE_ERRORS as exc:
            raise _storage_error(exc) from None
        finally:
            if relay is not None:
                relay.cancel()
        return Outcome(
            output_bucket=out_bucket,
            output_key=job.output_key,
            output_keys=[k for _, k in uploads],
            output_size=sum(f.stat().st_size for f, _ in uploads),
            duration=expected,
            elapsed=time.monotonic() - started,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _known_info(
    known_info: Callable[[str, str, str], Awaitable[MediaInfo | None]] | None,
    bucket: str,
    key: str,
    etag: str,
) -> MediaInfo | None:
    if known_info is None:
        return None
    try:
        return await known_info(bucket, key, etag)
    except Exception:  # only a shortcut: probe instead of failing the job
        log.warning("known_info failed; probing the source", exc_info=True)
        return None


async def _probe(url: str, timeout: float) -> MediaInfo:
    try:
        return await probe(url, timeout=timeout)
    except ProbeError as exc:
        msg = str(exc)
        if looks_like_network_error(msg):
            raise JobError(f"reading the source failed: {msg}", "storage", retryable=True) from None
        raise JobError(f"source is not readable media: {msg}", "source") from None


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def _ensure_dir(path: str | Path) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(path)
