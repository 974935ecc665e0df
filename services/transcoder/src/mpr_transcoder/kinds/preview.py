"""The ``preview`` kind: a short looping animation for listings, clips from evenly spread moments of the
source, or a little after the scene changes nearest them when the source has a scene per clip
(:func:`preview_clips`; the scenes kept by an earlier job on the source, :mod:`..scene_store`), joined in
one FFmpeg command (:func:`preview_args`, pure): animated WebP (libwebp_anim) or GIF (a palette made from
the clips themselves), as the output key's extension says.

Each clip is an input of its own, seeking in the source (FFmpeg reads only those seconds, with HTTP
range requests) under the source's whitelists; its frames are resampled to the preview's rate, scaled
(never up), and concatenated. A source shorter than the clips gets fewer or shorter clips; one with no
picture fails as invalid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mpr_common.events import MediaInfo, PreviewOptions
from mpr_common.keys import extension
from mpr_common.scenes import scene_moments

from ..ffmpeg.argv import GLOBAL_ARGS, input_args, size_limit
from ..ffmpeg.filtergraph import filter_spec
from ..job_errors import JobError
from ..steps import StepRunner
from .base import JobContext, Work
from .colour import to_sdr_filter

# Encoder settings: small files that still read well at 320 px.
WEBP_QUALITY = "70"
GIF_COLORS = "128"


def preview_clips(
    duration: float | None, opts: PreviewOptions, scenes: Sequence[float] = ()
) -> list[tuple[float, float]]:
    """(start, seconds) of each clip: ``opts.clips`` clips of ``opts.clip_seconds`` centred on evenly
    spread moments of a source of ``duration`` seconds, inside it; fewer clips when they would not fit
    one after another, one clip of the whole source when it is shorter than a clip. An unknown duration:
    one clip from the start. With ``scenes`` (the source's cuts) that give a scene per clip, each clip
    starts a little after the scene start nearest its even moment instead
    (:func:`~mpr_common.scenes.scene_moments`)."""
    length = opts.clip_seconds
    if not duration or duration <= 0 or not math.isfinite(duration):
        return [(0.0, length)]
    length = min(length, duration)
    n = max(1, min(opts.clips, math.floor(duration / length + 1e-9)))
    even = []
    for i in range(n):
        centre = duration * (2 * i + 1) / (2 * n)
        even.append(round(min(max(0.0, centre - length / 2), duration - length), 3))
    starts, _ = scene_moments(duration, scenes, even, length)
    return [(start, round(length, 3)) for start in starts]


def preview_args(
    url: str,
    info: MediaInfo,
    opts: PreviewOptions,
    out: Path,
    max_bytes: int | None = None,
    scenes: Sequence[float] = (),
) -> list[str]:
    """The FFmpeg command that writes the preview to ``out`` (``.webp`` or ``.gif``), its clips chosen
    with the source's ``scenes``."""
    if info.video_codec is None:
        raise ValueError("the source has no video stream to make a preview of")
    clips = preview_clips(info.duration, opts, scenes)
    args = list(GLOBAL_ARGS)
    for start, seconds in clips:
        args += input_args(url, start, end=start + seconds)
    scale = filter_spec("scale", {"w": f"2*trunc(min({opts.width},iw)/2)", "h": "-2", "flags": "lanczos"})
    to_sdr = to_sdr_filter(info)  # an HDR source's preview is SDR, tone-mapped after scaling
    each = f"fps={opts.fps:g},{scale}{',' + to_sdr if to_sdr else ''},setsar=1,setpts=PTS-STARTPTS"
    graph = [f"[{i}:v:0]{each}[c{i}]" for i in range(len(clips))]
    joined = "".join(f"[c{i}]" for i in range(len(clips))) + f"concat=n={len(clips)}:v=1:a=0"
    frames = math.ceil(sum(s for _, s in clips) * opts.fps) + len(clips)  # a bound, never reached
    fmt = extension(out.name)
    if fmt == ".gif":
        graph.append(
            f"{joined},split[p0][p1];[p0]palettegen=max_colors={GIF_COLORS}:stats_mode=diff[pal];"
            "[p1][pal]paletteuse=dither=bayer:bayer_scale=3[out]"
        )
        codec = ["-c:v", "gif", "-loop", "0", "-f", "gif"]
    elif fmt == ".webp":
        graph.append(f"{joined},format=yuv420p[out]")
        codec = ["-c:v", "libwebp_anim", "-quality", WEBP_QUALITY, "-loop", "0", "-f", "webp"]
    else:
        raise ValueError(f"a preview is a .webp or .gif, not {fmt or 'a file without extension'}")
    args += ["-filter_complex", ";".join(graph), "-map", "[out]", "-an", "-sn", "-dn"]
    return args + ["-frames:v", str(frames), *codec, *size_limit(max_bytes), str(out)]


def plan(ctx: JobContext) -> Work:
    job = ctx.job
    opts = job.preview or PreviewOptions()
    main = ctx.out_dir / f"preview{extension(job.output_key or '')}"

    def command(scenes: Sequence[float]) -> list[str]:
        try:
            return preview_args(ctx.url, ctx.info, opts, main, ctx.max_bytes, scenes)
        except ValueError as exc:
            raise JobError(str(exc), "invalid") from None

    command(())  # refused before any FFmpeg runs
    # as many clips as long with scenes or without
    expected = sum(s for _, s in preview_clips(ctx.info.duration, opts))

    async def run(runner: StepRunner) -> None:
        # the scenes a transcode or an analysis kept: a pass over the whole source would cost far more
        # than the few seconds a preview reads
        scenes = (await ctx.scenes.known() or []) if ctx.scenes is not None else []
        await runner(command(scenes))

    # An animation's clock is its own (frames at the preview's rate), not the source's: not checked
    # against the source's duration.
    return Work(main, expected, run, check_written=False)
