"""Test media made on the spot with FFmpeg's lavfi sources (nothing binary is committed)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

# A directory that the test processes of one run share (tests/conftest.py makes it): media made from
# lavfi sources alone is made once there and copied, not encoded again by each process or module.
MEDIA_CACHE_ENV = "MPR_TEST_MEDIA_CACHE"
# One file per output, so that a copy of it is the whole output (not HLS, DASH or numbered images).
_CACHEABLE = frozenset({".mp4", ".mkv", ".webm", ".mov", ".flac", ".wav", ".m4a", ".mp3", ".ogg", ".opus"})


def ffmpeg(*args: str) -> None:
    out = Path(args[-1]) if args else None
    cache = os.environ.get(MEDIA_CACHE_ENV)
    if cache and out is not None and _generated(args[:-1]) and out.suffix in _CACHEABLE:
        _cached(Path(cache), args[:-1], out)
    else:
        _run(*args)


def _run(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _generated(options: tuple[str, ...]) -> bool:
    """Every input is a lavfi source: the output depends on nothing but these options."""
    inputs = [i for i, a in enumerate(options) if a == "-i"]
    return bool(inputs) and all(i >= 2 and options[i - 2 : i] == ("-f", "lavfi") for i in inputs)


def _cached(cache: Path, options: tuple[str, ...], out: Path) -> None:
    key = hashlib.sha256("\0".join((*options, out.suffix)).encode()).hexdigest()[:32]
    made = cache / f"{key}{out.suffix}"
    if not made.exists():
        # Made under a name of this process's own, then renamed: another process sees it whole or not at all.
        part = cache / f".{key}.{os.getpid()}.{threading.get_ident()}{out.suffix}"
        _run(*options, str(part))
        os.replace(part, made)
    shutil.copyfile(made, out)


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
