"""One job from request to uploaded output: the core shared by the NATS worker and the Lambda handler.

FFmpeg is bounded by :class:`Limits` (one ``TRANSCODER_*`` setting each): the source's picture size and
duration are checked against the probe before it runs; it runs for at most ``job_timeout``, is stopped
after ``stall_timeout`` without progress, under an address-space cap, with ``-t`` and ``-fs`` bounds (the
latter below the work dir's free space); a SIGKILL (the OOM killer) is a transient failure. Errors name
the source by its key: never a presigned URL (``mpr_common.mediainfo.redact``)."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.events import FailureReason, JobRequested, Loudness, MediaInfo, Rendition
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.keys import extension
from mpr_common.mediainfo import ProbeError, looks_like_network_error, probe, redact
from mpr_common.presets import AUDIO_RENDITION, PRESETS, STORYBOARD_VTT, Preset
from mpr_common.settings import S3Settings
from mpr_common.storage import get_presigned_url, head_object

from .cmaf import describe_rendition, rendition_args
from .ffmpeg_command import Plan, build_plan, input_args
from .ffmpeg_runner import (
    FfmpegCancelled,
    FfmpegError,
    FfmpegKilled,
    FfmpegOutOfMemory,
    FfmpegSourceGap,
    FfmpegStalled,
    FfmpegTimeout,
    ProgressReport,
    Runner,
    run_ffmpeg,
    written_duration,
)
from .loudness import OUTPUT_RATE, LoudnessError, SilentAudio, loudnorm_filter, measure_loudness
from .settings import TranscoderSettings
from .smart_cut import smart_trim
from .storyboard import make_storyboard
from .uploader import STORAGE_ERRORS, OutputTooLarge, OutputUploader, dir_size

log = logging.getLogger("mpr.transcoder")


class JobError(Exception):
    """A job that failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, reason: FailureReason, retryable: bool = False, log: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
        self.log = log  # FFmpeg's stderr tail, when FFmpeg failed


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


_SETTINGS = {f.name: f for f in dataclasses.fields(TranscoderSettings)}


def _default(name: str) -> Any:
    return _SETTINGS[name].default


def setting(name: str, value: object) -> str:
    """``TRANSCODER_X=value``: how a failure names the limit it hit."""
    shown = f"{value:.12g}" if isinstance(value, float) else str(value)
    return f"{_SETTINGS[name].metadata['env'][0]}={shown}"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one job: each is the :class:`TranscoderSettings` field of the same name (its default,
    its ``TRANSCODER_*`` variable)."""

    job_timeout: float = _default("job_timeout")
    probe_timeout: float = _default("probe_timeout")
    max_output_bytes: int = _default("max_output_bytes")
    disk_reserve_bytes: int = _default("disk_reserve_bytes")
    max_width: int = _default("max_width")
    max_height: int = _default("max_height")
    max_pixels: int = _default("max_pixels")
    max_source_duration: float = _default("max_source_duration")
    stall_timeout: float = _default("stall_timeout")
    ffmpeg_max_memory: int = _default("ffmpeg_max_memory")

    @classmethod
    def from_settings(cls, settings: TranscoderSettings) -> Limits:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def check_source(info: MediaInfo, limits: Limits) -> None:
    """Refuse, before FFmpeg runs, a source whose probe shows more than the limits allow."""
    w, h = info.width or 0, info.height or 0
    over = [
        setting(name, limit)
        for name, value, limit in (
            ("max_width", w, limits.max_width),
            ("max_height", h, limits.max_height),
            ("max_pixels", w * h, limits.max_pixels),
        )
        if limit and value > limit
    ]
    if over:
        raise JobError(f"source picture is {w}x{h} ({w * h} pixels), above {', '.join(over)}", "source")
    d, dmax = info.duration, limits.max_source_duration
    if d is not None and dmax and d > dmax:
        raise JobError(f"source lasts {d:.1f}s, above {setting('max_source_duration', dmax)}s", "source")


def free_space(path: str | Path) -> int:
    return shutil.disk_usage(path).free


# --- the work dir --------------------------------------------------------------------------------------
# Each job works in <workdir>/job-<id>-<random>/ and holds an exclusive flock on its .lock file while it
# runs; the kernel drops the lock when the process ends, also on kill -9.

LOCK_FILE = ".lock"


def _lock(job_dir: Path) -> int:
    fd = os.open(job_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def clean_workdir(workdir: str | Path, older_than: float = 60.0) -> list[Path]:
    """Remove the ``job-*`` dirs under ``workdir`` that no running job holds (left by a worker that was
    killed) and that are older than ``older_than`` seconds; returns them. Safe while other workers use
    the same dir: a running job's lock is never free."""
    root = Path(workdir)
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than
    removed = []
    for d in sorted(root.glob("job-*")):
        try:
            if d.is_symlink() or not d.is_dir() or d.stat().st_mtime > cutoff:
                continue
            fd: int | None = os.open(d / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # no lock (yet, or any more): stale once it is old enough
            fd = None
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        except BlockingIOError:  # a running job
            continue
        finally:
            if fd is not None:
                os.close(fd)
    return removed


def _storage_error(exc: Exception) -> JobError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("404", "NoSuchKey", "NotFound"):
            return JobError("source object not found", "source", retryable=False)
        if code in ("NoSuchBucket",):
            return JobError(redact(f"bucket not found: {exc}"), "storage", retryable=False)
        if status in (400, 403) and code not in ("RequestTimeout", "SlowDown"):
            return JobError(f"storage refused the request: {code}", "storage", retryable=False)
    return JobError(redact(f"storage unavailable: {exc}"), "storage", retryable=True)


# Signals that end FFmpeg from outside (the OOM killer sends SIGKILL): another attempt may succeed. Any
# other signal is a crash, which the same input repeats.
_EXTERNAL_KILLS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _ffmpeg_error(exc: FfmpegError, limits: Limits) -> JobError:
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


async def _locate(job: JobRequested, s3: Any, s3_settings: S3Settings) -> tuple[str, str]:
    """(etag, presigned URL) of the job's source."""
    bucket = job.source_bucket or s3_settings.bucket_in
    try:
        head = await asyncio.to_thread(head_object, job.source_key, bucket, client=s3)
        url = await asyncio.to_thread(get_presigned_url, job.source_key, bucket, 6 * 3600, client=s3)
    except (ClientError, BotoCoreError) as exc:
        raise _storage_error(exc) from None
    return head.etag, url


async def read_source(
    job: JobRequested,
    *,
    s3: Any,
    s3_settings: S3Settings,
    limits: Limits = Limits(),
    known_info: Callable[[str, str, str], Awaitable[MediaInfo | None]] | None = None,
) -> MediaInfo:
    """The source's metadata (the catalog's probe when it has one), checked against the limits."""
    etag, url = await _locate(job, s3, s3_settings)
    info = await _known_info(known_info, job.source_bucket or s3_settings.bucket_in, job.source_key, etag)
    if info is None:
        info = await _probe(url, job.source_key, limits)
    check_source(info, limits)
    return info


def check_range(job: JobRequested, info: MediaInfo) -> None:
    """A start at or past the source's end can only make an empty output: refuse it before FFmpeg runs."""
    d = info.duration
    if d is not None and job.start is not None and job.start >= d:
        raise JobError(
            f"start {job.start:.3f}s is at or beyond the end of the source ({d:.3f}s long)", "invalid"
        )


class StepRunner:
    """Runs a job's FFmpeg commands under its limits, its cancel signal and ``names`` (URL → key for error
    text), and turns their progress into the job's: each command fills the window ``[lo, hi]`` of the
    job's percentage, measured against ``expected`` seconds of media."""

    def __init__(
        self,
        limits: Limits,
        cancelled: asyncio.Event,
        names: dict[str, str],
        on_progress: Callable[[float, ProgressReport], None],
        expected: float | None,
    ) -> None:
        self.limits = limits
        self.cancelled = cancelled
        self.names = names
        self.on_progress = on_progress
        self.expected = expected
        self.window = (0.0, 100.0)
        self.written = 0.0  # seconds of media the last command wrote

    def scoped(
        self, lo: float, hi: float, expected: float | None = None, *, by_time: bool = True
    ) -> StepRunner:
        """A runner for one step filling ``[lo, hi]``: by media time against ``expected`` (the job's by
        default), or, ``by_time=False``, only when its commands end (their timelines are not the job's)."""
        expected = (expected or self.expected) if by_time else None
        other = StepRunner(self.limits, self.cancelled, self.names, self.on_progress, expected)
        other.window = (lo, hi)
        return other

    def halving(self, top: float = 95.0) -> Runner:
        """Runs commands of unknown number: each one ended moves the progress half way to ``top``."""
        reached = [self.window[0]]

        async def run(args: list[str]) -> list[str]:
            lo = reached[0]
            reached[0] = hi = lo + (top - lo) / 2
            return await self.scoped(lo, hi, by_time=False)(args)

        return run

    async def __call__(self, args: list[str]) -> list[str]:
        lo, hi = self.window
        self.written = 0.0

        def progress(rep: ProgressReport) -> None:
            if rep.out_time is not None:
                self.written = max(self.written, rep.out_time)
            if self.expected and rep.out_time is not None:
                # By media written, also when the command ends: one of many short commands (a
                # storyboard's tiles) does not make the whole step look done.
                frac = min(1.0 if rep.done else 0.99, rep.out_time / self.expected)
            else:
                frac = 1.0 if rep.done else 0.0
            self.on_progress(lo + (hi - lo) * frac, rep)

        return await run_ffmpeg(
            args,
            progress,
            timeout=self.limits.job_timeout,
            cancelled=self.cancelled,
            stall_timeout=self.limits.stall_timeout or None,
            max_memory=self.limits.ffmpeg_max_memory or None,
            names=self.names,
        )


@dataclass(slots=True)
class Work:
    """What one job does in its work dir: ``run(runner)`` runs its FFmpeg step(s) and leaves the outputs
    in ``main.parent`` (all uploaded; ``main`` last, segments while they are written)."""

    main: Path
    expected: float | None
    run: Callable[[StepRunner], Awaitable[None]]
    segment_glob: str | None = None
    check_written: bool = True  # FFmpeg's last command must have written about ``expected`` seconds
    loudness: Loudness | None = None
    rendition: Rendition | None = None


def _expected(job: JobRequested, info: MediaInfo) -> float | None:
    d, start = info.duration, job.start or 0.0
    if job.end is not None:
        return job.end - start if d is None else min(job.end - start, max(0.0, d - start))
    return None if d is None else max(0.0, d - start)


def plan_work(
    job: JobRequested, preset: Preset, url: str, info: MediaInfo, tmp: Path, max_bytes: int, limits: Limits
) -> Work:
    """How ``job`` (normalised) runs: one FFmpeg command (build_plan), or the steps of its kind."""
    out_dir = tmp / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Work(out_dir / "output", None, _nothing)

    async def with_loudness(runner: StepRunner, encode: Callable[[str | None], Awaitable[None]]) -> None:
        """Loudness normalisation's first pass (the first 30 % of the progress), then ``encode`` with its filter."""
        if not job.loudnorm or info.audio_codec is None:  # nothing to normalise
            await encode(None)
            return
        measure = runner.scoped(0.0, 30.0, expected=_expected(job, info))
        try:
            work.loudness = await measure_loudness(
                url, measure, start=job.start, duration=_expected(job, info) if job.end else None, info=info
            )
        except SilentAudio:  # silence has no loudness to bring to the target: the sound stays as it is
            await encode(None)
            return
        except LoudnessError as exc:
            raise JobError(f"loudness normalisation: {exc}", "source") from None
        rate = (
            OUTPUT_RATE if job.kind == "rendition" else preset.audio_rate or info.sample_rate or OUTPUT_RATE
        )
        await encode(loudnorm_filter(work.loudness, sample_rate=rate))

    if job.kind == "trim" and preset.video_codec == "smart":
        work.main = out_dir / f"output{extension(job.output_key or '') or '.mp4'}"
        work.expected, work.check_written = _expected(job, info), False

        async def trim(runner: StepRunner) -> None:
            try:
                await smart_trim(
                    url,
                    info,
                    job.start,
                    job.end,
                    tmp / "work",
                    work.main,
                    runner.halving(),  # its steps work on shifted timelines
                    name=job.source_key,
                    max_bytes=max_bytes,
                )
            except ValueError as exc:  # TrimRangeError, or an output container it cannot write
                raise JobError(str(exc), "invalid") from None

        work.run = trim
        return work

    if job.kind == "storyboard":
        work.main, work.check_written = out_dir / STORYBOARD_VTT, False

        async def storyboard(runner: StepRunner) -> None:
            # One pass over the key frames (FFmpeg's reports follow the source), or one seek per tile
            # (each tile's end reports the share done).
            steps = runner.scoped(0.0, 95.0, expected=info.duration)

            def done(frac: float) -> None:
                steps.on_progress(95.0 * frac, ProgressReport())

            try:
                await make_storyboard(url, info, preset, out_dir, steps, on_progress=done)
            except ValueError as exc:
                raise JobError(str(exc), "invalid") from None

        work.run = storyboard
        return work

    if job.kind == "rendition":
        name = job.rendition or ""
        rung = next((r for r in preset.ladder if r.name == name), None)
        if rung is None and name != AUDIO_RENDITION:
            raise JobError(f"rendition {name!r} is not in ladder {preset.name!r}", "invalid")
        if (info.video_codec if rung else info.audio_codec) is None:
            raise JobError(
                f"the source has no {'video' if rung else 'audio'} stream for rendition {name}", "invalid"
            )
        work.main, work.segment_glob, work.expected = out_dir / f"{name}.m3u8", f"{name}_*.m4s", info.duration

        async def rendition(runner: StepRunner) -> None:
            async def encode(audio_filter: str | None) -> None:
                main = runner.scoped(30.0 if audio_filter else 0.0, 100.0)
                await main(
                    rendition_args(input_args(url), preset, rung, info, out_dir, loudnorm_filter=audio_filter)
                )
                runner.written = main.written

            await with_loudness(runner, encode)
            work.rendition = await asyncio.to_thread(describe_rendition, out_dir, name, rung)

        work.run = rendition
        return work

    def plan(audio_filter: str | None = None) -> Plan:
        try:
            return build_plan(
                job,
                preset,
                url,
                info,
                out_dir,
                max_bytes,
                max_source_duration=limits.max_source_duration or None,
                audio_filter=audio_filter,
            )
        except ValueError as exc:
            raise JobError(str(exc), "invalid") from None

    first = plan()
    work.main, work.expected, work.segment_glob = (
        first.main_output,
        first.expected_duration,
        first.segment_glob,
    )

    async def single(runner: StepRunner) -> None:
        async def encode(audio_filter: str | None) -> None:
            main = runner.scoped(30.0 if audio_filter else 0.0, 100.0)
            await main((plan(audio_filter) if audio_filter else first).args)
            runner.written = main.written

        await with_loudness(runner, encode)

    work.run = single
    return work


async def _nothing(runner: StepRunner) -> None:
    return None


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
    see ``source_info.catalog_probe``) to save running ffprobe; None means unknown. A package job is not
    run here: the worker plans it into child jobs (see ``packaging``).
    """
    started = time.monotonic()
    try:
        job = normalize_job(job)
    except JobRequestError as exc:
        raise JobError(str(exc), "invalid") from None
    if job.kind == "package":
        raise JobError("a package runs as its child jobs, on the transcoders' queue", "invalid")
    preset = PRESETS[job.preset or ""]
    src_bucket = job.source_bucket or s3_settings.bucket_in
    out_bucket = job.output_bucket or s3_settings.bucket_out
    assert job.output_key

    etag, url = await _locate(job, s3, s3_settings)
    info = await _known_info(known_info, src_bucket, job.source_key, etag)
    if info is None:
        info = await _probe(url, job.source_key, limits)
    check_source(info, limits)
    check_range(job, info)

    # -fs: the setting, or less when the work dir has less room (it is shared with the other jobs).
    root = _ensure_dir(workdir)
    free = free_space(root)
    room = free - limits.disk_reserve_bytes
    if room <= 0:
        raise JobError(
            f"no room in the work dir: {free} bytes free, {setting('disk_reserve_bytes', limits.disk_reserve_bytes)}"
            " must stay free",
            "internal",
            retryable=True,
        )
    max_bytes = min(limits.max_output_bytes, room)

    def too_large(size: int) -> JobError:
        if max_bytes < limits.max_output_bytes:
            return JobError(
                f"output reached {size} bytes, the work dir's room: {free} bytes free minus "
                f"{setting('disk_reserve_bytes', limits.disk_reserve_bytes)} (below "
                f"{setting('max_output_bytes', limits.max_output_bytes)})",
                "internal",
                retryable=True,
            )
        return JobError(
            f"output reached {size} bytes, the size limit {setting('max_output_bytes', limits.max_output_bytes)}",
            "ffmpeg",
        )

    tmp = Path(tempfile.mkdtemp(prefix=f"job-{job.job_id}-", dir=root))
    lock: int | None = None
    try:
        lock = _lock(tmp)  # held until the dir is removed: clean_workdir leaves it alone
        work = plan_work(job, preset, url, info, tmp, max_bytes, limits)
        expected = work.expected

        # FFmpeg stops on a cancel request, and also when an upload running beside it failed: the
        # job fails (and is retried) now rather than after hours of encoding.
        stop = asyncio.Event()
        relay = asyncio.create_task(_relay(cancelled, stop)) if cancelled is not None else None
        runner = StepRunner(limits, stop, {url: job.source_key}, on_progress, expected)
        # The uploader also watches the size of what HLS writes, which FFmpeg's -fs does not see.
        uploader = OutputUploader(
            s3,
            out_bucket,
            Plan([], work.main.parent, work.main, expected, segment_glob=work.segment_glob),
            job.output_key,
            on_error=stop.set,
            max_bytes=max_bytes,
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
                    raise _ffmpeg_error(exc, limits) from None
                on_progress(100.0, ProgressReport(done=True))

                size = dir_size(work.main.parent)
                if size >= max_bytes:  # -fs ends FFmpeg without an error, the output cut short
                    raise too_large(size)
                written = runner.written
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
                if cancelled is not None and cancelled.is_set():  # e.g. its lease lost: upload nothing more
                    raise JobError("cancelled by request", "cancelled")
                uploads = await uploader.finish()  # segments first, the main output last
        except OutputTooLarge as exc:
            raise too_large(exc.size) from None
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
            loudness=work.loudness,
            rendition=work.rendition,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if lock is not None:
            os.close(lock)


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
