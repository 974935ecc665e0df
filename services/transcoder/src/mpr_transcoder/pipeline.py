"""One job from request to uploaded output: the core shared by the NATS worker and the Lambda handler.

The job's source is located (a presigned URL, never a download) and probed (the catalog's probe when it
has one), checked against the job's :class:`~.limits.Limits`; its kind plans its FFmpeg steps
(:mod:`.kinds`), which run in a work dir of its own (:mod:`.workdir`) under the limits (``ffmpeg``'s
runner: at most ``job_timeout``, stopped after ``stall_timeout`` without progress, under an address-space
cap, with ``-t`` and ``-fs`` bounds, the latter below the work dir's free space), while the uploader sends
what is finished. A SIGKILL (the OOM killer) is a transient failure. Errors name the source by its key:
never a presigned URL (``mpr_common.mediainfo.redact``)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.content_keys import PackageKey
from mpr_common.events import (
    PROBE_VERSION,
    JobRequested,
    KeepVerdict,
    Loudness,
    MediaInfo,
    Quality,
    Rendition,
)
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.keeping import decide, judged
from mpr_common.mediainfo import ProbeError, looks_like_network_error
from mpr_common.presets import PRESETS
from mpr_common.s3_client import S3Client
from mpr_common.settings import S3Settings
from mpr_common.storage import S3Object

from . import kinds
from .ffmpeg import FfmpegCancelled, FfmpegError, ProgressReport, probe, run_ffmpeg, written_duration
from .job_errors import JobError, ffmpeg_error, storage_error
from .kinds import JobContext, Work
from .kinds.single_output import Plan
from .limits import Limits, check_source
from .scene_store import SceneStore
from .settings import setting
from .source_objects import locate
from .steps import StepRunner
from .subtitle_sources import prepare_subtitles, trim_sidecars
from .uploader import STORAGE_ERRORS, OutputTooLarge, OutputUploader, dir_size
from .watermarks import prepare_watermark
from .workdir import free_space, lock

__all__ = ["JobError", "Limits", "Outcome", "read_source", "run_job"]

log = logging.getLogger("mpr.transcoder")

DEFAULT_LIMITS = Limits()  # every setting at its default
KnownInfo = Callable[[str, str, str], Awaitable[MediaInfo | None]]


@dataclass(slots=True)
class Outcome:
    output_bucket: str
    output_key: str
    output_keys: list[str] = field(default_factory=list)
    output_size: int = 0
    duration: float | None = None
    elapsed: float = 0.0
    loudness: Loudness | None = None  # measured on the source, when the job normalised loudness
    rendition: Rendition | None = None  # a package's child: what the manifests are written from
    quality: Quality | None = None  # its video output's against the source, when measured
    keep: KeepVerdict | None = None  # judged by the job's keep_if/floors; not kept: nothing uploaded
    scene_cuts: list[float] | None = None  # a transcode chunk's, for its join (see kinds.transcode)


async def _locate(job: JobRequested, s3: S3Client, s3_settings: S3Settings) -> tuple[S3Object, str]:
    """(HEAD, presigned URL) of the job's source."""
    bucket = job.source_bucket or s3_settings.bucket_in
    try:
        head, url = await locate(s3, bucket, job.source_key)
    except (ClientError, BotoCoreError) as exc:
        raise storage_error(exc) from None
    return head, url


async def _source(
    job: JobRequested, s3: S3Client, s3_settings: S3Settings, limits: Limits, known_info: KnownInfo | None
) -> tuple[str, MediaInfo, S3Object]:
    """(presigned URL, metadata, HEAD) of the job's source (the catalog's probe when it has one),
    checked against the limits."""
    head, url = await _locate(job, s3, s3_settings)
    info = await _known_info(
        known_info, job.source_bucket or s3_settings.bucket_in, job.source_key, head.etag
    )
    if info is None:
        info = await _probe(url, job.source_key, limits)
    check_source(info, limits)
    return url, info, head


async def read_source(
    job: JobRequested,
    *,
    s3: S3Client,
    s3_settings: S3Settings,
    limits: Limits = DEFAULT_LIMITS,
    known_info: KnownInfo | None = None,
) -> MediaInfo:
    """The source's metadata (the catalog's probe when it has one), checked against the limits: what a job
    graph is planned from."""

    _, info, _ = await _source(job, s3, s3_settings, limits, known_info)
    return info


def check_range(job: JobRequested, info: MediaInfo) -> None:
    """A start at or past the source's end can only make an empty output: refuse it before FFmpeg runs."""
    d = info.duration
    if d is not None and job.start is not None and job.start >= d:
        raise JobError(
            f"start {job.start:.3f}s is at or beyond the end of the source ({d:.3f}s long)", "invalid"
        )


@dataclass(frozen=True, slots=True)
class Room:
    """How much a job may write: ``-fs`` is the setting, or less when the work dir has less room (it is
    shared with the other jobs)."""

    root: str
    free: int
    max_bytes: int
    limits: Limits

    @classmethod
    def of(cls, workdir: str | Path, limits: Limits) -> Room:
        root = _ensure_dir(workdir)
        free = free_space(root)
        room = free - limits.disk_reserve_bytes
        if room <= 0:
            raise JobError(
                f"no room in the work dir: {free} bytes free, "
                f"{setting('disk_reserve_bytes', limits.disk_reserve_bytes)} must stay free",
                "internal",
                retryable=True,
            )
        return cls(root, free, min(limits.max_output_bytes, room), limits)

    def too_large(self, size: int) -> JobError:
        limits = self.limits
        if self.max_bytes < limits.max_output_bytes:
            return JobError(
                f"output reached {size} bytes, the work dir's room: {self.free} bytes free minus "
                f"{setting('disk_reserve_bytes', limits.disk_reserve_bytes)} (below "
                f"{setting('max_output_bytes', limits.max_output_bytes)})",
                "internal",
                retryable=True,
            )
        return JobError(
            f"output reached {size} bytes, the size limit {setting('max_output_bytes', limits.max_output_bytes)}",
            "ffmpeg",
        )


async def run_job(
    job: JobRequested,
    *,
    s3: S3Client,
    s3_settings: S3Settings,
    workdir: str | Path,
    on_progress: Callable[[float, ProgressReport], None],
    cancelled: asyncio.Event | None = None,
    limits: Limits = DEFAULT_LIMITS,
    known_info: KnownInfo | None = None,
    content_key: PackageKey | None = None,
    scene_store: SceneStore | None = None,
) -> Outcome:
    """Validate, probe, run FFmpeg on a presigned URL of the source, upload the outputs.

    ``known_info(bucket, key, etag)`` may return the source's metadata probed earlier (the catalog's,
    see ``source_info.catalog_probe``) to save running ffprobe; None means unknown. ``content_key``: the
    key an encrypted package's rendition encrypts its segments with (``kinds.rendition.encryption``).
    ``scene_store``: where the source's scene changes are kept for every job on it (none: the kinds
    do without them). A package job is not
    run here: the worker plans it into child jobs (see ``kinds.package``).
    """
    started = time.monotonic()
    try:
        job = normalize_job(job)
    except JobRequestError as exc:
        raise JobError(str(exc), "invalid") from None
    kinds.check(job)
    assert job.output_key
    url, info, head = await _source(job, s3, s3_settings, limits, known_info)
    source_size = head.size
    check_range(job, info)
    room = Room.of(workdir, limits)
    tmp = Path(tempfile.mkdtemp(prefix=f"job-{job.job_id}-", dir=room.root))
    held: int | None = None
    try:
        held = lock(tmp)  # held until the dir is removed: clean_workdir leaves it alone
        watermark = await prepare_watermark(job, tmp, s3=s3, s3_settings=s3_settings, limits=limits)
        subtitles = await prepare_subtitles(job, info, url, s3=s3, s3_settings=s3_settings)
        sidecars = await trim_sidecars(job, url, s3=s3, s3_settings=s3_settings)
        scenes = None
        if scene_store is not None:
            bucket = job.source_bucket or s3_settings.bucket_in
            scenes = scene_store.lookup(bucket, job.source_key, head.etag, head.size, url, tmp)
        ctx = JobContext(
            *(job, PRESETS[job.preset or ""], url, info, tmp, room.max_bytes, limits, watermark, subtitles),
            content_key=content_key,
            sidecars=tuple(sidecars),
            scenes=scenes,
        )
        work = kinds.plan_work(ctx)
        out_bucket = job.output_bucket or s3_settings.bucket_out

        def judge(work: Work) -> KeepVerdict | None:
            if not judged(job):
                return None
            return decide(
                job,
                source_size=source_size,
                source_seconds=info.duration,
                output_size=dir_size(work.main.parent),
                output_seconds=work.expected,
                quality=work.quality,
            )

        uploads, verdict = await _execute(ctx, work, room, s3, out_bucket, on_progress, cancelled, judge)
        return Outcome(
            output_bucket=out_bucket,
            output_key=job.output_key,
            output_keys=[k for _, k in uploads],
            output_size=sum(f.stat().st_size for f, _ in uploads),
            keep=verdict,
            duration=work.expected,
            elapsed=time.monotonic() - started,
            loudness=work.loudness,
            rendition=work.rendition,
            quality=work.quality,
            scene_cuts=work.scene_cuts,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if held is not None:
            os.close(held)


async def _execute(
    ctx: JobContext,
    work: Work,
    room: Room,
    s3: S3Client,
    out_bucket: str,
    on_progress: Callable[[float, ProgressReport], None],
    cancelled: asyncio.Event | None,
    judge: Callable[[Work], KeepVerdict | None] = lambda _: None,
) -> tuple[list[tuple[Path, str]], KeepVerdict | None]:
    """Run the job's steps while its finished outputs upload, check what they wrote, judge it (keep_if),
    upload the rest; an output not kept is not uploaded (kinds judged write one file, uploaded last)."""
    job = ctx.job
    assert job.output_key
    # FFmpeg stops on a cancel request, and also when an upload running beside it failed: the
    # job fails (and is retried) now rather than after hours of encoding.
    stop = asyncio.Event()
    relay = asyncio.create_task(_relay(cancelled, stop)) if cancelled is not None else None
    runner = StepRunner(ctx.limits, stop, _names(ctx), on_progress, work.expected, run_ffmpeg)
    # The uploader also watches the size of what HLS writes, which FFmpeg's -fs does not see.
    uploader = OutputUploader(
        s3,
        out_bucket,
        Plan([], work.main.parent, work.main, work.expected, segment_glob=work.segment_glob),
        job.output_key,
        on_error=stop.set,
        max_bytes=room.max_bytes,
        seal=work.seal,
    )
    try:
        async with uploader:  # uploads while FFmpeg writes; cleans up if anything below raises
            try:
                await work.run(runner)
            except FfmpegCancelled:
                if uploader.error is not None and not (cancelled is not None and cancelled.is_set()):
                    raise uploader.error from None
                raise JobError("cancelled by request", "cancelled") from None
            except FfmpegError as exc:
                raise ffmpeg_error(exc, ctx.limits) from None
            on_progress(100.0, ProgressReport(done=True))
            await _check_written(work, runner, room)
            if cancelled is not None and cancelled.is_set():  # e.g. its lease lost: upload nothing more
                raise JobError("cancelled by request", "cancelled")
            return await _deliver(uploader, work, judge)
    except OutputTooLarge as exc:
        raise room.too_large(exc.size) from None
    except STORAGE_ERRORS as exc:
        raise storage_error(exc) from None
    finally:
        if relay is not None:
            relay.cancel()


def _names(ctx: JobContext) -> dict[str, str]:
    """What stands for each URL the job's FFmpeg reads in its errors: the object's key."""
    job = ctx.job
    names = {ctx.url: job.source_key}
    if ctx.watermark is not None and ctx.watermark.image_url and job.watermark and job.watermark.key:
        names[ctx.watermark.image_url] = job.watermark.key
    if ctx.subtitles is not None:
        names[ctx.subtitles.url] = ctx.subtitles.name
    for sidecar in ctx.sidecars:
        names[sidecar.url] = sidecar.name
    return names


async def _deliver(
    uploader: OutputUploader, work: Work, judge: Callable[[Work], KeepVerdict | None]
) -> tuple[list[tuple[Path, str]], KeepVerdict | None]:
    """Upload what the job made, unless its verdict does not keep it (then nothing more is sent)."""
    verdict = judge(work)
    if verdict is not None and not verdict.kept:
        await uploader.discard()
        return [], verdict
    return await uploader.finish(), verdict  # segments first, the main output last


async def _check_written(work: Work, runner: StepRunner, room: Room) -> None:
    """What FFmpeg wrote is whole: within the size bound, as long as the source declares, not empty."""
    size = dir_size(work.main.parent)
    if size >= room.max_bytes:  # -fs ends FFmpeg without an error, the output cut short
        raise room.too_large(size)
    expected, written = work.expected, runner.written
    if work.check_written and expected and written < expected - max(1.0, 0.05 * expected):
        written = max(written, await written_duration(work.main))  # progress lags VFR's end
    if work.check_written and expected and written < expected - max(1.0, 0.05 * expected):
        raise JobError(
            f"source is truncated or damaged: FFmpeg wrote {written:.1f}s of the "
            f"{expected:.1f}s the source declares",
            "source",
        )
    if not work.main.exists() or work.main.stat().st_size == 0:
        raise JobError("ffmpeg produced no output (empty range or no decodable frames)", "ffmpeg")


async def _known_info(known_info: KnownInfo | None, bucket: str, key: str, etag: str) -> MediaInfo | None:
    """The catalog's probe, when it read everything this transcoder plans from (its probe version: an
    older probe lacks audio or subtitle streams or the colour, and would plan too few tracks or an HDR
    source as SDR)."""
    if known_info is None:
        return None
    try:
        info = await known_info(bucket, key, etag)
    except Exception:  # only a shortcut: probe instead of failing the job
        log.warning("known_info failed; probing the source", exc_info=True)
        return None
    return info if info is not None and info.probe_version >= PROBE_VERSION else None


async def _probe(url: str, key: str, limits: Limits) -> MediaInfo:
    try:
        return await probe(
            url, timeout=limits.probe_timeout, name=key, max_memory=limits.ffmpeg_max_memory or None
        )
    except ProbeError as exc:  # its message names the key, never the presigned URL
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
