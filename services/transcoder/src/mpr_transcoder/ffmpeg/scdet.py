"""The scene detector's command and what it logs: one pass of FFmpeg's ``scdet`` over the whole source,
decoded without the loop filter and scaled to :data:`SCENE_HEIGHT` lines first (the detector's cost is
then the decode alone), each scene change logged at info level, into the command's report, with its time
(:func:`parse_scdet`, pure)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from .argv import GLOBAL_ARGS, NETWORK_PROTOCOLS, source_input

SCENE_HEIGHT = 144
SCENE_THRESHOLD = 10.0  # scdet's score (0-100) from which a frame starts a scene
_SCENE = re.compile(r"lavfi\.scd\.time:\s*([0-9]+(?:\.[0-9]+)?)")


def scene_args(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    """The scene detector's pass over the whole source, video only."""
    return [
        *GLOBAL_ARGS,
        "-skip_loop_filter",
        "all",
        *source_input(url, protocols=protocols),
        *("-map", "0:v:0", "-an", "-sn", "-dn"),
        "-filter:v",
        f"scale=-2:{SCENE_HEIGHT},scdet=threshold={SCENE_THRESHOLD:g}",
        # each decoded frame once: a jump in the source's timestamps is never filled with copies
        *("-fps_mode", "passthrough", "-f", "null", "-"),
    ]


def parse_scdet(text: str) -> list[float]:
    """The scene changes scdet logged in ``text`` (lines of any other filter or with no time ignored),
    sorted, each once."""
    times = set()
    for line in text.splitlines():
        if "scdet" in line and (m := _SCENE.search(line)):
            times.add(float(m[1]))
    return sorted(times)


def read_scenes(report: Path) -> list[float]:
    """The scene changes a command's report holds (none when it wrote none)."""
    with contextlib.suppress(FileNotFoundError):
        return parse_scdet(report.read_text(encoding="utf-8", errors="replace"))
    return []
