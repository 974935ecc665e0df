"""Runs FFmpeg as a child process (exec, no shell), reading ``-progress`` reports from stdout."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class ProgressReport:
    out_time: float | None = None  # seconds written
    speed: float | None = None  # x realtime
    done: bool = False


class FfmpegError(RuntimeError):
    def __init__(self, message: str, returncode: int | None, tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.tail = tail


class FfmpegTimeout(FfmpegError):
    pass


class FfmpegCancelled(FfmpegError):
    pass


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
        elif key == "progress":
            rep.done = value == "end"
    return rep


async def run_ffmpeg(
    args: list[str],
    on_progress: Callable[[ProgressReport], None],
    *,
    timeout: float,
    cancelled: asyncio.Event | None = None,
    tail_lines: int = 25,
) -> None:
    """Run ``args``; raise :class:`FfmpegError` (with the stderr tail) on failure."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)

    async def read_progress() -> None:
        block: list[str] = []
        assert proc.stdout
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            block.append(line)
            if line.startswith("progress="):
                on_progress(parse_progress_block(block))
                block = []

    async def read_stderr() -> None:
        assert proc.stderr
        async for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail.append(line)

    readers = asyncio.gather(read_progress(), read_stderr())
    waiter = asyncio.ensure_future(proc.wait())
    cancel_wait = asyncio.ensure_future(cancelled.wait()) if cancelled else None
    reason: str | None = None
    try:
        done, _ = await asyncio.wait(
            [w for w in (waiter, cancel_wait) if w], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            reason = "cancelled" if cancel_wait in done else "timeout"
            await _stop(proc)
        await waiter
        with contextlib.suppress(Exception):
            await asyncio.wait_for(readers, 5)
    except asyncio.CancelledError:
        await _stop(proc)
        raise
    finally:
        if cancel_wait:
            cancel_wait.cancel()
        if proc.returncode is None:
            await _stop(proc)
    text = "\n".join(tail)
    if reason == "timeout":
        raise FfmpegTimeout(f"ffmpeg ran longer than {timeout:.0f}s", proc.returncode, text)
    if reason == "cancelled":
        raise FfmpegCancelled("cancelled", proc.returncode, text)
    if proc.returncode != 0:
        last = tail[-1] if tail else ""
        raise FfmpegError(f"ffmpeg exited with {proc.returncode}: {last}"[:1000], proc.returncode, text)


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
