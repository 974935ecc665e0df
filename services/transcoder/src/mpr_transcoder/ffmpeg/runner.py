"""Runs FFmpeg as a child process (exec, no shell), reading ``-progress`` reports from stdout.

Bounds on one run: the total time (``timeout``), the time without progress (``stall_timeout``), the work
the source really holds (``max_frame_gap``: output time that no source frame accounts for), its address
space (``max_memory``, ``RLIMIT_AS``); it dies with the process that started it (Linux
``PR_SET_PDEATHSIG``). What it prints on stderr is redacted before anyone sees it: no presigned URL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mpr_common.mediainfo import ProbeError, child_setup, probe, redact

from .ffmpeg_command import VIDEO_TIMING

# What a job's steps are given to run FFmpeg: one argv in, its stderr lines out (under the job's limits,
# cancel signal and progress; see pipeline.StepRunner).
Runner = Callable[[list[str]], Awaitable[list[str]]]


@dataclass(slots=True)
class ProgressReport:
    out_time: float | None = None  # seconds written
    speed: float | None = None  # x realtime
    done: bool = False
    frame: int | None = None  # frames sent to the encoder
    total_size: int | None = None  # bytes written (N/A for muxers that write their own files, e.g. HLS)
    dup_frames: int | None = None  # of ``frame``, copies of an earlier picture (constant frame rate outputs)


class FfmpegError(RuntimeError):
    def __init__(self, message: str, returncode: int | None, tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.tail = tail


class FfmpegTimeout(FfmpegError):
    pass


class FfmpegStalled(FfmpegError):
    """No progress (time written, frames, bytes) for ``stall_timeout`` seconds."""


class FfmpegCancelled(FfmpegError):
    pass


class FfmpegSourceGap(FfmpegError):
    """The output's time ran far ahead of the source's frames: its timestamps jump (a frame hours after
    the previous one), so FFmpeg would write hours of one picture, or spend them duplicating it."""

    def __init__(self, message: str, returncode: int | None, tail: str, *, gap: float, at: float) -> None:
        super().__init__(message, returncode, tail)
        self.gap = gap  # seconds of output no source frame accounts for
        self.at = at  # output time (seconds) where the jump starts


class FfmpegKilled(FfmpegError):
    """Ended by a signal nobody here sent: the OOM killer's SIGKILL, or a crash (SIGSEGV, SIGABRT…)."""

    @property
    def signal_name(self) -> str:
        return _signal_name(-(self.returncode or 0))


class FfmpegOutOfMemory(FfmpegError):
    """An allocation failed: FFmpeg needs more memory than its address-space limit allows."""


# What FFmpeg, its libraries and the dynamic loader print when an allocation fails.
MEMORY_ERROR_MARKERS = (
    "Cannot allocate memory",
    "malloc of size",
    "failed to map segment",
    "Out of memory",
    "out of memory",
    "std::bad_alloc",
)


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"


def parse_progress_block(lines: list[str]) -> ProgressReport:
    """Parse one ``-progress`` block (``key=value`` lines ending with ``progress=...``)."""
    rep = ProgressReport()
    for line in lines:
        key, _, value = line.partition("=")
        value = value.strip()
        if key in ("out_time_us", "out_time_ms") and value not in ("N/A", ""):
            with contextlib.suppress(ValueError):
                rep.out_time = max(0.0, int(value) / 1_000_000)
        elif key == "speed" and value.endswith("x"):
            with contextlib.suppress(ValueError):
                rep.speed = float(value[:-1])
        elif key == "frame":
            with contextlib.suppress(ValueError):
                rep.frame = int(value)
        elif key == "total_size":
            with contextlib.suppress(ValueError):
                rep.total_size = int(value)
        elif key == "dup_frames":
            with contextlib.suppress(ValueError):
                rep.dup_frames = int(value)
        elif key == "progress":
            rep.done = value == "end"
    return rep


class _Progress:
    """When the run last moved forward: more time written, more frames, or more bytes."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self._best = [-1.0, -1.0, -1.0]

    def seen(self, rep: ProgressReport) -> None:
        moved = rep.done
        for i, value in enumerate((rep.out_time, rep.frame, rep.total_size)):
            if value is not None and value > self._best[i]:
                self._best[i] = value
                moved = True
        if moved:
            self.last = time.monotonic()

    async def stalled(self, limit: float) -> None:
        """Returns once nothing moved for ``limit`` seconds."""
        while True:
            idle = time.monotonic() - self.last
            if idle >= limit:
                return
            await asyncio.sleep(min(limit - idle, 1.0) + 0.01)


# Seconds of output without a new source frame that end a run (see :class:`FrameGaps`). A quarter of an
# hour of one picture: far above any slide or idle screen in a real recording, far below what a source
# whose timestamps jump by hours makes FFmpeg write.
MAX_FRAME_GAP = 900.0
# Each source frame accounts for at least this much output time before a gap is counted: estimates from
# ``-progress`` blocks (one every 0.5 s) never take a source at a few frames a second for a gap.
_FRAME_ALLOWANCE = 1.0


class FrameGaps:
    """Output time that the source's frames do not account for, from ``-progress`` blocks.

    A source frame far after the previous one shows in two ways. With a variable frame rate output
    (``-fps_mode vfr``) FFmpeg writes it at once: ``out_time`` leaps while few frames arrive. With a
    constant frame rate it fills the gap with copies: ``dup_frames`` climbs with ``frame`` while no new
    picture arrives (FFmpeg 7 reports while it does; FFmpeg 5 goes quiet, which the stall limit ends).
    Per block: ``new`` source frames (frames minus duplicates) over ``dt`` seconds of output leave
    ``dt - new * max(typical, 1 s)`` seconds unaccounted for, ``typical`` being the run's mean so far;
    blocks with duplicates and no new frame add up. A block without any video frame says nothing (audio
    goes on after the picture ended, or an audio-only output)."""

    def __init__(self, limit: float, *, leaps: bool = True) -> None:
        self.limit = limit
        # Whether a leap of out_time counts: only where each output frame is one source frame at its
        # own time (ffmpeg_command.VIDEO_TIMING); a storyboard's sheet legitimately stands for minutes.
        self.leaps = leaps
        self._time = 0.0
        self._frames = 0
        self._dups = 0
        self._silent = 0.0  # output time since the last new source frame, over duplicates only
        self._silent_from = 0.0

    def gap(self, rep: ProgressReport) -> tuple[float, float] | None:
        """(seconds unaccounted for, output time where they start) once above the limit, else None."""
        if rep.out_time is None or rep.frame is None:
            return None
        dt = rep.out_time - self._time
        frames = rep.frame - self._frames
        dups = max(0, (rep.dup_frames or 0) - self._dups)
        if frames <= 0 or dt <= 0:
            self._time = max(self._time, rep.out_time)
            return None
        new = max(0, frames - dups)
        source_frames = self._frames - self._dups
        typical = self._time / source_frames if source_frames > 0 else 0.0
        found: tuple[float, float] | None = None
        if new == 0:
            if self._silent == 0.0:
                self._silent_from = self._time
            self._silent += dt
            if self._silent > self.limit:
                found = (self._silent, self._silent_from)
        else:
            unaccounted = self._silent + dt - new * max(typical, _FRAME_ALLOWANCE)
            if self.leaps and unaccounted > self.limit:
                found = (unaccounted, self._silent_from if self._silent else self._time)
            self._silent = 0.0
        self._time, self._frames, self._dups = rep.out_time, rep.frame, rep.dup_frames or 0
        return found


def _writes_source_frames(args: list[str]) -> bool:
    """The command writes each source frame at its own time (:data:`VIDEO_TIMING`), nothing else."""
    n = len(VIDEO_TIMING)
    return any(args[i : i + n] == VIDEO_TIMING for i in range(len(args) - n + 1))


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
) -> list[str]:
    """Run ``args``; return what it printed on stderr (redacted, the last ``keep_lines`` lines: e.g. a
    filter's report such as loudnorm's JSON); raise :class:`FfmpegError` (with the stderr tail) on failure.

    ``stall_timeout``: stop FFmpeg when its progress (time written, frames, bytes) has not moved for that
    long (e.g. a source whose next frame is hours ahead: FFmpeg writes duplicates without a report).
    ``max_frame_gap``: stop FFmpeg as soon as that many seconds of output hold no new source frame
    (:class:`FrameGaps`: duplicates always; a leap of the output time in commands with
    ``ffmpeg_command.VIDEO_TIMING``; None: no check).
    ``max_memory``: its address space in bytes. ``names``: URL → name (the object's key) for the stderr
    tail; any other URL there loses its query string (see ``mpr_common.mediainfo.redact``)."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=child_setup(max_memory),
    )
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
    progress = _Progress()
    gaps = FrameGaps(max_frame_gap, leaps=_writes_source_frames(args)) if max_frame_gap else None
    gap_found: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()

    async def read_progress() -> None:
        block: list[str] = []
        assert proc.stdout
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            block.append(line)
            if line.startswith("progress="):
                rep = parse_progress_block(block)
                progress.seen(rep)
                if gaps is not None and not gap_found.done() and (found := gaps.gap(rep)):
                    gap_found.set_result(found)
                on_progress(rep)
                block = []

    async def read_stderr() -> None:
        assert proc.stderr
        async for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                shown = redact(line, names)
                tail.append(shown)
                lines.append(shown)

    readers = asyncio.gather(read_progress(), read_stderr())
    waiter = asyncio.ensure_future(proc.wait())
    cancel_wait = asyncio.ensure_future(cancelled.wait()) if cancelled else None
    stall_wait = asyncio.ensure_future(progress.stalled(stall_timeout)) if stall_timeout else None
    reason: str | None = None
    try:
        done, _ = await asyncio.wait(
            [w for w in (waiter, cancel_wait, stall_wait, gap_found) if w],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if gap_found in done:
            reason = "gap"
        elif waiter not in done:
            reason = "cancelled" if cancel_wait in done else "stalled" if stall_wait in done else "timeout"
        if reason is not None:
            await _stop(proc)
        await waiter
        with contextlib.suppress(Exception):
            await asyncio.wait_for(readers, 5)
        if reason is None and gap_found.done():  # FFmpeg ended at once: what it wrote is not the source
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
    text = "\n".join(tail)
    rc = proc.returncode
    if reason == "timeout":
        raise FfmpegTimeout(f"ffmpeg ran longer than {timeout:.0f}s", rc, text)
    if reason == "stalled":
        raise FfmpegStalled(f"ffmpeg made no progress for {stall_timeout:g}s", rc, text)
    if reason == "cancelled":
        raise FfmpegCancelled("cancelled", rc, text)
    if reason == "gap":
        gap, at = gap_found.result()
        raise FfmpegSourceGap(
            f"the source's timestamps jump by about {gap:.0f}s after {at:.1f}s: "
            f"no source frame for more than {max_frame_gap:g}s of output",
            rc,
            text,
            gap=gap,
            at=at,
        )
    if rc is not None and rc < 0:
        raise FfmpegKilled(f"ffmpeg was killed by {_signal_name(-rc)}", rc, text)
    # An allocation that failed under the limit: FFmpeg may still exit 0 (an input error mid-stream).
    if any(m in text for m in MEMORY_ERROR_MARKERS):
        limit = f" under its address-space limit of {_mib(max_memory)}" if max_memory else ""
        raise FfmpegOutOfMemory(f"ffmpeg ran out of memory{limit}", rc, text)
    if rc != 0:
        last = tail[-1] if tail else ""
        raise FfmpegError(f"ffmpeg exited with {rc}: {last}"[:1000], rc, text)
    return list(lines)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 3)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def written_duration(path: Path, timeout: float = 30.0) -> float:
    """Seconds of media in an output FFmpeg wrote (0.0 if it cannot be read, e.g. an HLS playlist).

    ``-progress`` reports the time of the last packet muxed: with B-frames that is a frame before the
    last ones shown, so with :data:`~.ffmpeg_command.VIDEO_TIMING` a source whose last frames are seconds
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
        info = await probe(str(path), timeout=timeout, protocols="file", name=path.name)
    except ProbeError:
        return 0.0
    return info.duration or 0.0
