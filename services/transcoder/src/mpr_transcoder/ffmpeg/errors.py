"""How an FFmpeg run failed: stopped by the runner (time, stall, cancel, a jump in the source's
timestamps), killed from outside, out of memory, or an error of its own. Each carries FFmpeg's stderr tail,
redacted (no presigned URL)."""

from __future__ import annotations

import signal


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
        return signal_name(-(self.returncode or 0))


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


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
