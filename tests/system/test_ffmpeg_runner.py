"""The FFmpeg runner on real ffmpeg with lavfi input: limits, cancellation, error tails."""

from __future__ import annotations

import asyncio
import time

import pytest

from mpr_transcoder.ffmpeg import FfmpegCancelled, FfmpegError, FfmpegTimeout, run_ffmpeg

pytestmark = pytest.mark.system

BASE = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-progress", "pipe:1"]


def lavfi(seconds: int) -> list[str]:
    return [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=640x360:rate=25:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "veryslow",
    ]


async def test_progress_is_reported(tmp_path):
    reports = []
    await run_ffmpeg(
        [*BASE, "-f", "lavfi", "-i", "testsrc=duration=2", str(tmp_path / "o.mp4")],
        reports.append,
        timeout=60,
    )
    assert reports[-1].done and reports[-1].out_time == pytest.approx(2.0, abs=0.15)


async def test_time_limit_kills_ffmpeg(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(FfmpegTimeout, match="longer than 1s"):
        await run_ffmpeg([*BASE, *lavfi(600), str(tmp_path / "o.mp4")], lambda r: None, timeout=1)
    assert time.monotonic() - t0 < 6


async def test_cancel_event_stops_ffmpeg(tmp_path):
    ev = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, ev.set)
    with pytest.raises(FfmpegCancelled):
        await run_ffmpeg(
            [*BASE, *lavfi(600), str(tmp_path / "o.mp4")], lambda r: None, timeout=60, cancelled=ev
        )


async def test_size_limit_is_enforced(tmp_path):
    out = tmp_path / "o.yuv"
    args = ["-f", "lavfi", "-i", "testsrc2=size=640x360:duration=60", "-pix_fmt", "yuv420p", "-f", "rawvideo"]
    await run_ffmpeg([*BASE, *args, "-fs", "2000000", str(out)], lambda r: None, timeout=60)
    # -fs stops within a few frames of the limit (its check runs between packets; one 640x360 yuv420p
    # frame is 345,600 bytes), far below the 518 MB this command writes unlimited.
    assert 345_600 <= out.stat().st_size <= 2_000_000 + 6 * 345_600


async def test_failure_carries_stderr_tail(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(FfmpegError) as err:
        await run_ffmpeg([*BASE, "-i", str(bad), str(tmp_path / "o.mp4")], lambda r: None, timeout=30)
    assert err.value.returncode != 0 and "Invalid data" in err.value.tail
