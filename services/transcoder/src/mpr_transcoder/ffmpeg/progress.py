"""FFmpeg's ``-progress`` reports (``key=value`` blocks on stdout) and what the runner reads from them:
whether the run still moves forward, and whether its output runs ahead of the source's frames."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass


@dataclass(slots=True)
class ProgressReport:
    out_time: float | None = None  # seconds written
    speed: float | None = None  # x realtime
    done: bool = False
    frame: int | None = None  # frames sent to the encoder
    total_size: int | None = None  # bytes written (N/A for muxers that write their own files, e.g. HLS)
    dup_frames: int | None = None  # of ``frame``, copies of an earlier picture (constant frame rate outputs)


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


class Progress:
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
        # own time (argv.VIDEO_TIMING); a storyboard's sheet legitimately stands for minutes.
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
