"""Checks of media files that need few FFmpeg launches: every ffmpeg/ffprobe process costs about 0.1 s of
CPU before it reads a byte (Debian's build links some 200 shared libraries), so a check reads what it
can from the file's own bytes and decodes many files in one run."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

# JPEG files read as one picture each (jpeg_pipe): image2 would take a "%" in the path for a pattern.
JPEG = ("-f", "jpeg_pipe")


def jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header (the SOFn segment a decoder sizes the picture by)."""
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8", f"{path.name}: not a JPEG"
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, f"{path.name}: no marker at byte {pos}"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        # SOF0-SOF15, bar DHT (C4), JPG (C8) and DAC (CC), which share the range
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        assert marker != 0xDA, f"{path.name}: image data before a frame header"
        pos += 2 + length
    raise AssertionError(f"{path.name}: no frame header")


def decode_jpegs_gray(paths: Sequence[Path]) -> list[bytes]:
    """Each JPEG decoded to 8-bit luma, one FFmpeg run for all of them."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.gray" for i in range(len(paths))]
        args = ["ffmpeg", "-nostdin", "-v", "error"]
        for p in paths:
            args += [*JPEG, "-i", str(p)]
        for i, out in enumerate(outs):
            args += ["-map", f"{i}:v:0", "-f", "rawvideo", "-pix_fmt", "gray", str(out)]
        subprocess.run(args, check=True, capture_output=True)
        return [out.read_bytes() for out in outs]


def decode_report(path: Path | str, *options: str) -> tuple[str, dict[str, str]]:
    """FFmpeg decodes ``path`` (its first picture and first sound, as FFmpeg picks them, unless
    ``options`` map others) to nothing: what it printed at the error level, and its last progress report
    (``frame``: the pictures decoded, each one kept: the null muxer passes timestamps through)."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            *options,
            "-progress",
            "pipe:1",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stderr, dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def rgb_frame(path: Path | str, *before_input: str, at: float | None = None) -> tuple[int, int, bytes]:
    """(width, height, rgb24 pixels) of one picture, in one FFmpeg run: written as a PPM, whose header
    gives the size (``at``: the picture shown at that time, decoded up to it)."""
    seek = ["-ss", str(at)] if at is not None else []
    data = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *before_input, "-i", str(path), *seek, "-frames:v", "1"]
        + ["-f", "image2pipe", "-c:v", "ppm", "-"],
        capture_output=True,
        check=True,
    ).stdout
    header = re.match(rb"P6\s(\d+)\s(\d+)\s255\s", data)  # FFmpeg's: "P6\n320 180\n255\n"
    assert header, data[:20]
    w, h, pixels = int(header[1]), int(header[2]), data[header.end() :]
    assert len(pixels) == w * h * 3
    return w, h, pixels
