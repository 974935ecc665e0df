"""What the FFmpeg on this machine can do, asked once per process: options that need an optional part of
FFmpeg are refused with the reason where it is missing (Debian 12's FFmpeg has no libvmaf)."""

from __future__ import annotations

import functools
import shutil
import subprocess

PROBE_TIMEOUT = 10.0


@functools.cache
def has_filter(name: str) -> bool:
    """Whether ``ffmpeg -filters`` lists ``name``; False when there is no FFmpeg or it does not answer."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [ffmpeg, "-hide_banner", "-filters"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def has_libvmaf() -> bool:
    return has_filter("libvmaf")
