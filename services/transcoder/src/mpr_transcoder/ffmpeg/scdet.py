"""The scene detector's command and what it logs: FFmpeg's ``scdet`` over the whole source's picture,
scaled to :data:`SCENE_HEIGHT` lines first, each scene change logged at info level, into the command's
report, with its time (:func:`parse_scdet`, pure). Either a pass of its own, decoded without the loop
filter (:func:`scene_args`: its cost is then the decode alone), or an extra output of a command that
decodes the whole source anyway (:func:`scene_output`: its cost is the scaling and the scores)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from .argv import GLOBAL_ARGS, NETWORK_PROTOCOLS, source_input

SCENE_HEIGHT = 144
SCENE_THRESHOLD = 10.0  # scdet's score (0-100) from which a frame starts a scene
_SCENE = re.compile(r"lavfi\.scd\.time:\s*([0-9]+(?:\.[0-9]+)?)")


def scene_output(length: str | None = None) -> list[str]:
    """The detector as an output of a command whose first input is the source: its picture scaled and
    scored, nothing written (``length``: the command's bound on its outputs, ``-t``)."""
    return [
        *("-map", "0:v:0", "-an", "-sn", "-dn"),
        "-filter:v",
        f"scale=-2:{SCENE_HEIGHT},scdet=threshold={SCENE_THRESHOLD:g}",
        # each decoded frame once: a jump in the source's timestamps is never filled with copies
        *("-fps_mode", "passthrough"),
        *(["-t", length] if length is not None else []),
        *("-f", "null", "-"),
    ]


def scene_args(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    """The scene detector's pass over the whole source, video only."""
    return [
        *GLOBAL_ARGS,
        "-skip_loop_filter",
        "all",
        *source_input(url, protocols=protocols),
        *scene_output(),
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
