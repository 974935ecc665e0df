"""Test media made on the spot with FFmpeg's lavfi sources (nothing binary is committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_video(path: Path, seconds: int = 12, size: str = "640x360", rate: int = 25) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        str(rate),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-shortest",
        "-movflags",
        "+faststart",
        str(path),
    )
    return path


def make_mkv(path: Path, seconds: int = 6) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=320x240:rate=25:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=220:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "libopus",
        "-shortest",
        str(path),
    )
    return path


def make_timed_mkv(path: Path, frames: int, pts: str) -> Path:
    """``frames`` frames of 320x240 whose timestamps (seconds) are the FFmpeg expression ``pts`` of N:
    jumps and variable frame rates that no lavfi source makes by itself."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=320x240:rate=25:duration={frames / 25}",
        "-vf",
        f"setpts='({pts})/TB'",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-fps_mode",
        "passthrough",
        str(path),
    )
    return path


def make_audio(path: Path, seconds: int = 5) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}", "-ac", "2", str(path)
    )
    return path


def probe(path_or_url: str | Path) -> dict:
    import json

    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path_or_url)],
        check=True,
        capture_output=True,
    )
    return json.loads(out.stdout)
