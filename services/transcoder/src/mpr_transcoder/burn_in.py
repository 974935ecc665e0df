"""Subtitles burnt into a transcode's picture: the track (a subtitle stream of the source or a sidecar,
see :mod:`.subtitle_sources`) is converted to WebVTT, read and written again in pure Python
(:mod:`.webvtt`: only cues, times and text reach the renderer), its times moved to the output's when
the transcode starts later than the source (input seeking restarts the frames' times at 0), and drawn
by the ``subtitles`` filter (libass) after scaling. The file's path is the filter's only value, escaped
as every value of a graph is (:func:`~.ffmpeg.filtergraph.filter_spec`).

A burning transcode is never chunked: each chunk's frames start again at 0."""

from __future__ import annotations

from pathlib import Path

from . import webvtt
from .ffmpeg.filtergraph import filter_spec
from .job_errors import JobError

CONVERTED = "burn-source.vtt"
BURNT = "burn.vtt"


def burn_filter(path: Path) -> str:
    """The ``subtitles`` filter drawing the WebVTT file ``path``."""
    return filter_spec("subtitles", {"filename": str(path)})


def shifted(cues: list[webvtt.Cue], start: float | None) -> list[webvtt.Cue]:
    """``cues`` on the timeline of an output that starts ``start`` seconds into the source: earlier
    ones left out, one that spans the start cut to it."""
    return webvtt.window(cues, round((start or 0.0) * 1000))


def write_burn_file(converted: Path, out: Path, start: float | None, name: str) -> None:
    """The WebVTT FFmpeg converted (``converted``) as the file the filter draws (``out``)."""
    try:
        cues = webvtt.parse(converted.read_text(encoding="utf-8", errors="replace"))
    except webvtt.WebVTTError as exc:
        raise JobError(f"burn_subtitles: the subtitles of {name}: {exc}", "source") from None
    out.write_text(webvtt.serialize(shifted(cues, start)), encoding="utf-8")
