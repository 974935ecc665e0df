"""A package's subtitle rendition: one subtitle track (a stream of the source or a subtitle file) as
segmented WebVTT for HLS plus the whole track in one file for DASH.

FFmpeg converts the track to WebVTT (``-c:s webvtt``: no picture or sound is decoded; FFmpeg reads the
source's packets of that stream only), then :mod:`mpr_transcoder.webvtt` cuts it on the package's
segment boundaries (every ``hls_segment_seconds`` from 0, the times the video segments start at) and
writes ``<name>_00000.vtt``…, ``<name>.vtt`` and the media playlist ``<name>.m3u8``. A track is never
chunked: it is cheap, and its cues keep the source's times whatever the video's chunks are."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from mpr_common.events import Rendition, SubtitleTrack
from mpr_common.presets import Preset
from mpr_common.subtitles import MAX_SUBTITLE_BYTES, subtitle_segment_pattern, subtitle_text_file

from ... import webvtt
from ...job_errors import JobError
from ...steps import StepRunner
from ..base import JobContext, Work
from .cmaf import playlist_name

CONVERTED = "converted.vtt"  # in the work dir, not uploaded


def write_track(
    text: str, out_dir: Path, name: str, track: SubtitleTrack, duration: float | None, segment_seconds: float
) -> Rendition:
    """The track's WebVTT ``text`` as segments, a whole file and a media playlist in ``out_dir``;
    raises :class:`~mpr_transcoder.webvtt.WebVTTError` when it is not WebVTT."""
    cues = webvtt.parse(text)
    end = max([c.end for c in cues], default=0)
    total = round(duration * 1000) if duration else end
    bounds = webvtt.boundaries(max(total, 1), round(segment_seconds * 1000))
    pattern = subtitle_segment_pattern(name)
    files: list[str] = []
    sizes: list[int] = []
    header = (webvtt.TIMESTAMP_MAP,)
    for i, cues_of in enumerate(webvtt.segment(cues, bounds)):
        files.append(pattern % i)
        data = webvtt.serialize(cues_of, header).encode()
        (out_dir / files[-1]).write_bytes(data)
        sizes.append(len(data))
    (out_dir / subtitle_text_file(name)).write_text(webvtt.serialize(cues), encoding="utf-8")
    (out_dir / playlist_name(name)).write_text(webvtt.media_playlist(files, bounds), encoding="utf-8")
    durations = [(bounds[i + 1] - bounds[i]) / 1000 for i in range(len(files))]
    seconds = sum(durations)
    return Rendition(
        name=name,
        type="subtitles",
        playlist=playlist_name(name),
        init="",
        media_pattern=pattern,
        segments=durations,
        bandwidth=max(
            (math.ceil(8 * s / d) for s, d in zip(sizes, durations, strict=True) if d > 0), default=0
        ),
        average_bandwidth=math.ceil(8 * sum(sizes) / seconds) if seconds > 0 else 0,
        codecs="wvtt",
        language=track.language,
        label=track.label,
        text_file=subtitle_text_file(name),
        default=track.default,
        forced=track.forced,
    )


def plan_subtitles(ctx: JobContext, name: str) -> Work:
    """The subtitle rendition ``name`` of ``ctx.job`` (its track: ``ctx.subtitles``)."""
    source = ctx.subtitles
    if source is None:
        raise JobError(f"subtitle rendition {name} has no subtitle track", "invalid")
    preset: Preset = ctx.preset
    if not preset.hls_segment_seconds:
        raise JobError(f"preset {preset.name!r} has no segment length", "invalid")
    segment_seconds = preset.hls_segment_seconds
    converted = ctx.tmp / CONVERTED

    async def run(runner: StepRunner) -> None:
        await runner.scoped(0.0, 90.0)(source.webvtt_args(converted))
        text = converted.read_bytes()[:MAX_SUBTITLE_BYTES].decode("utf-8", "replace")
        try:
            work.rendition = await asyncio.to_thread(
                write_track, text, ctx.out_dir, name, source.track, ctx.info.duration, segment_seconds
            )
        except webvtt.WebVTTError as exc:
            raise JobError(f"subtitles of {source.name}: {exc}", "source") from None

    # FFmpeg's progress counts the subtitle's time, which says nothing of the source's length
    work = Work(ctx.out_dir / playlist_name(name), ctx.info.duration, run, check_written=False)
    return work
