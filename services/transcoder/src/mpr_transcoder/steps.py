"""A job's FFmpeg steps: each command run under the job's limits and cancel signal, its progress turned
into the job's percentage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from .ffmpeg import ProgressReport, Runner, run_ffmpeg
from .ffmpeg.argv import bounded_threads
from .limits import Limits

# run_ffmpeg's signature: the job's caller passes its own (the one its module names, which tests replace).
StartFfmpeg = Callable[..., Awaitable[list[str]]]


class StepRunner:
    """Runs a job's FFmpeg commands under its limits, its cancel signal and ``names`` (URL → key for error
    text), and turns their progress into the job's: each command fills the window ``[lo, hi]`` of the
    job's percentage, measured against ``expected`` seconds of media. ``start`` runs one command
    (:func:`~.ffmpeg.run_ffmpeg`)."""

    def __init__(
        self,
        limits: Limits,
        cancelled: asyncio.Event,
        names: dict[str, str],
        on_progress: Callable[[float, ProgressReport], None],
        expected: float | None,
        start: StartFfmpeg = run_ffmpeg,
    ) -> None:
        self.start = start
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
        other = StepRunner(self.limits, self.cancelled, self.names, self.on_progress, expected, self.start)
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

    async def __call__(self, args: list[str], *, report: Path | None = None) -> list[str]:
        """Run ``args``; ``report``: FFmpeg's debug log goes to that file too (an encoder's per-frame
        statistics: see ``quality``)."""
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

        return await self.start(
            bounded_threads(args, self.limits.ffmpeg_threads),
            progress,
            timeout=self.limits.job_timeout,
            cancelled=self.cancelled,
            stall_timeout=self.limits.stall_timeout or None,
            max_memory=self.limits.ffmpeg_max_memory or None,
            names=self.names,
            **({"report": report} if report is not None else {}),
        )
