"""Runs FFmpeg as a child process (exec, no shell, :mod:`.process`), reading ``-progress`` reports from
stdout.

Bounds on one run: the total time (``timeout``), the time without progress (``stall_timeout``), the work
the source really holds (``max_frame_gap``: output time that no source frame accounts for), its address
space (``max_memory``, ``RLIMIT_AS``); it dies with the process that started it (Linux
``PR_SET_PDEATHSIG``). What it prints on stderr is redacted before anyone sees it: no presigned URL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mpr_common.mediainfo import ProbeError, redact

from .argv import LOCAL_FILES, writes_source_frames
from .errors import (
    MEMORY_ERROR_MARKERS,
    FfmpegCancelled,
    FfmpegError,
    FfmpegKilled,
    FfmpegOutOfMemory,
    FfmpegSourceGap,
    FfmpegStalled,
    FfmpegTimeout,
    signal_name,
)
from .probe import probe
from .process import spawn
from .progress import MAX_FRAME_GAP, FrameGaps, Progress, ProgressReport, parse_progress_block

# What a job's steps are given to run FFmpeg: one argv in, its stderr lines out (under the job's limits,
# cancel signal and progress; see steps.StepRunner).
Runner = Callable[[list[str]], Awaitable[list[str]]]


@dataclass(slots=True)
class _Watch:
    """What the readers of one run saw: stderr (redacted), its progress, a jump in the source found."""

    tail: collections.deque[str]
    lines: collections.deque[str]
    progress: Progress = field(default_factory=Progress)
    gaps: FrameGaps | None = None
    gap_found: asyncio.Future[tuple[float, float]] | None = None


STOP_GRACE = 3.0  # seconds FFmpeg has to end after SIGTERM before it is killed


async def _read_progress(proc: asyncio.subprocess.Process, watch: _Watch, on_progress) -> None:
    block: list[str] = []
    assert proc.stdout and watch.gap_found is not None
    async for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").strip()
        block.append(line)
        if line.startswith("progress="):
            rep = parse_progress_block(block)
            watch.progress.seen(rep)
            if watch.gaps is not None and not watch.gap_found.done() and (found := watch.gaps.gap(rep)):
                watch.gap_found.set_result(found)
            on_progress(rep)
            block = []


async def _read_stderr(proc: asyncio.subprocess.Process, watch: _Watch, names) -> None:
    assert proc.stderr
    async for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            shown = redact(line, names)
            watch.tail.append(shown)
            watch.lines.append(shown)


async def _wait(
    proc: asyncio.subprocess.Process,
    watch: _Watch,
    readers: Awaitable,
    timeout: float,
    cancelled: asyncio.Event | None,
    stall_timeout: float | None,
) -> str | None:
    """Until FFmpeg ends or is stopped; why it was stopped (``gap``, ``cancelled``, ``stalled``,
    ``timeout``), None when it ended by itself."""
    assert watch.gap_found is not None
    waiter = asyncio.ensure_future(proc.wait())
    cancel_wait = asyncio.ensure_future(cancelled.wait()) if cancelled else None
    stall_wait = asyncio.ensure_future(watch.progress.stalled(stall_timeout)) if stall_timeout else None
    reason: str | None = None
    try:
        done, _ = await asyncio.wait(
            [w for w in (waiter, cancel_wait, stall_wait, watch.gap_found) if w],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if watch.gap_found in done:
            reason = "gap"
        elif waiter not in done:
            reason = "cancelled" if cancel_wait in done else "stalled" if stall_wait in done else "timeout"
        if reason is not None:
            # Cancelled: asked to end (it usually does at once). Otherwise FFmpeg has gone wrong (stalled,
            # writing duplicates, over its time): its output is thrown away, and a stalled FFmpeg may
            # spin a core through a grace period without ending, so it is killed at once.
            await _stop(proc, grace=STOP_GRACE if reason == "cancelled" else 0.0)
        await waiter
        with contextlib.suppress(Exception):
            await asyncio.wait_for(readers, 5)
        if reason is None and watch.gap_found.done():  # FFmpeg ended at once: what it wrote is not the source
            reason = "gap"
    except asyncio.CancelledError:
        await _stop(proc)
        raise
    finally:
        for w in (cancel_wait, stall_wait):
            if w is not None:
                w.cancel()
        if proc.returncode is None:
            await _stop(proc)
    return reason


def _failure(
    reason: str | None,
    rc: int | None,
    watch: _Watch,
    *,
    timeout: float,
    stall_timeout: float | None,
    max_memory: int | None,
    max_frame_gap: float | None,
) -> FfmpegError | None:
    """The error a run ended with, None for a success."""
    text = "\n".join(watch.tail)
    if reason == "timeout":
        return FfmpegTimeout(f"ffmpeg ran longer than {timeout:.0f}s", rc, text)
    if reason == "stalled":
        return FfmpegStalled(f"ffmpeg made no progress for {stall_timeout:g}s", rc, text)
    if reason == "cancelled":
        return FfmpegCancelled("cancelled", rc, text)
    if reason == "gap":
        assert watch.gap_found is not None
        gap, at = watch.gap_found.result()
        return FfmpegSourceGap(
            f"the source's timestamps jump by about {gap:.0f}s after {at:.1f}s: "
            f"no source frame for more than {max_frame_gap:g}s of output",
            rc,
            text,
            gap=gap,
            at=at,
        )
    if rc is not None and rc < 0:
        return FfmpegKilled(f"ffmpeg was killed by {signal_name(-rc)}", rc, text)
    # An allocation that failed under the limit: FFmpeg may still exit 0 (an input error mid-stream).
    if any(m in text for m in MEMORY_ERROR_MARKERS):
        limit = f" under its address-space limit of {max_memory / 1024**2:.0f} MiB" if max_memory else ""
        return FfmpegOutOfMemory(f"ffmpeg ran out of memory{limit}", rc, text)
    if rc != 0:
        last = watch.tail[-1] if watch.tail else ""
        return FfmpegError(f"ffmpeg exited with {rc}: {last}"[:1000], rc, text)
    return None


async def run_ffmpeg(
    args: list[str],
    on_progress: Callable[[ProgressReport], None],
    *,
    timeout: float,
    cancelled: asyncio.Event | None = None,
    tail_lines: int = 25,
    stall_timeout: float | None = None,
    max_memory: int | None = None,
    names: Mapping[str, str] | None = None,
    keep_lines: int = 400,
    max_frame_gap: float | None = MAX_FRAME_GAP,
    report: Path | None = None,
) -> list[str]:
    """Run ``args``; return what it printed on stderr (redacted, the last ``keep_lines`` lines: e.g. a
    filter's report such as loudnorm's JSON); raise :class:`FfmpegError` (with the stderr tail) on failure.

    ``stall_timeout``: stop FFmpeg when its progress (time written, frames, bytes) has not moved for that
    long (e.g. a source whose next frame is hours ahead: FFmpeg writes duplicates without a report).
    ``max_frame_gap``: stop FFmpeg as soon as that many seconds of output hold no new source frame
    (:class:`FrameGaps`: duplicates always; a leap of the output time in commands with
    ``argv.VIDEO_TIMING``; None: no check).
    ``max_memory``: its address space in bytes. ``names``: URL → name (the object's key) for the stderr
    tail; any other URL there loses its query string (see ``mpr_common.mediainfo.redact``).
    ``report``: FFmpeg also writes its log at debug level to this file (``FFREPORT``; stderr keeps the
    command's own level), where an encoder's per-frame statistics are (see ``..quality``)."""
    proc = await spawn(args, max_memory=max_memory, new_session=True, env=report_env(report))
    watch = _Watch(collections.deque(maxlen=tail_lines), collections.deque(maxlen=keep_lines))
    if max_frame_gap:
        watch.gaps = FrameGaps(max_frame_gap, leaps=writes_source_frames(args))
    watch.gap_found = asyncio.get_running_loop().create_future()
    readers = asyncio.gather(_read_progress(proc, watch, on_progress), _read_stderr(proc, watch, names))
    reason = await _wait(proc, watch, readers, timeout, cancelled, stall_timeout)
    error = _failure(
        reason,
        proc.returncode,
        watch,
        timeout=timeout,
        stall_timeout=stall_timeout,
        max_memory=max_memory,
        max_frame_gap=max_frame_gap,
    )
    if error is not None:
        raise error
    return list(watch.lines)


# AV_LOG_DEBUG: the level at which libx264 prints its per-frame statistics.
REPORT_LEVEL = 48


def report_env(report: Path | None) -> dict[str, str] | None:
    """The environment that makes FFmpeg write its debug log to ``report``: ``FFREPORT``'s option syntax
    escapes ``:`` and ``\\`` in the file name, and expands ``%`` (``%%``: itself)."""
    if report is None:
        return None
    name = str(report).replace("\\", "\\\\").replace(":", "\\:").replace("%", "%%")
    return {"FFREPORT": f"file={name}:level={REPORT_LEVEL}"}


async def _stop(proc: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL when FFmpeg has not ended within ``grace`` seconds (0: SIGKILL at once)."""
    if proc.returncode is not None:
        return
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def written_duration(path: Path, timeout: float = 30.0) -> float:
    """Seconds of media in an output FFmpeg wrote (0.0 if it cannot be read, e.g. an HLS playlist).

    ``-progress`` reports the time of the last packet muxed: with B-frames that is a frame before the
    last ones shown, so with :data:`~.argv.VIDEO_TIMING` a source whose last frames are seconds
    apart (slides, an idle screen) reads seconds short. Asked only when the reported time falls short.
    An HLS playlist (written by FFmpeg, not a source) holds the duration of each segment."""
    if path.suffix == ".m3u8":
        try:
            lines = path.read_text(errors="replace").splitlines()  # noqa: ASYNC240 (a few KB, local)
        except OSError:
            return 0.0
        total = 0.0
        for line in lines:
            if line.startswith("#EXTINF:"):
                with contextlib.suppress(ValueError):
                    total += float(line[len("#EXTINF:") :].split(",")[0])
        return total
    try:
        info = await probe(str(path), timeout=timeout, protocols=LOCAL_FILES, name=path.name)
    except ProbeError:
        return 0.0
    return info.duration or 0.0
