"""The ``transcode`` kind: one FFmpeg command (:mod:`..single_output`), or, for a chunked transcode
(:mod:`.graph`), one of its parts run as a child job: a video chunk (``job.chunk``) or the sound."""

from __future__ import annotations

from pathlib import Path

import msgspec

from mpr_common.events import ChunkSpan

from ...ffmpeg.argv import input_args
from ...ffmpeg.scdet import read_scenes
from ...job_errors import JobError
from ...quality import encode_measured
from ...steps import StepRunner
from .. import single_output
from ..base import JobContext, Work
from ..colour import to_sdr_filter
from .parts import chunk_key_frames, chunk_scene_cuts, chunkable_preset, video_chunk_args


def plan(ctx: JobContext) -> Work:
    job = ctx.job
    if job.parent_id is None:
        return single_output.plan(ctx)
    if not chunkable_preset(ctx.preset):
        raise JobError(f"preset {ctx.preset.name!r} is never chunked", "invalid")
    if job.chunk is not None:
        return _video_chunk(ctx, job.chunk)
    return _sound(ctx)


def _video_chunk(ctx: JobContext, chunk: ChunkSpan) -> Work:
    """Exactly the source frames of ``[start, end)``, video only (see :mod:`.parts`), with key frames at
    the source's scene cuts inside it when they are kept; when they are not, the scene detector runs
    over the frames it decodes anyway, and its completion carries the cuts of its span
    (``scene_cuts``), which the join keeps as the source's once every chunk has looked."""
    if ctx.info.video_codec is None:
        raise JobError("the source has no video stream to encode in chunks", "invalid")
    end = chunk.end if chunk.end is not None else ctx.info.duration
    expected = None if end is None else max(0.0, end - chunk.start)
    main = ctx.out_dir / "chunk.mp4"

    async def run(runner: StepRunner) -> None:
        step = runner.scoped(0.0, 100.0)
        source = input_args(ctx.url, chunk.start, end=chunk.end)
        scenes = await ctx.scenes.known() if ctx.scenes is not None else None
        key_frames = chunk_key_frames(scenes, chunk, ctx.info.fps) if scenes else []
        find = ctx.scenes is not None and scenes is None  # without a store there is nowhere to keep them
        args = video_chunk_args(
            *(source, ctx.preset, main, ctx.max_bytes, ctx.watermark, to_sdr_filter(ctx.info), key_frames),
            find_scenes=find,
        )
        found: list[float] = []

        def read_found(report: Path) -> None:
            found.extend(read_scenes(report))

        # with its frames' values: the transcode's quality is that of all its chunks' frames
        work.quality = await encode_measured(
            step, args, ctx.tmp, keep_frames=True, on_report=read_found if find else None
        )
        runner.written = step.written
        if find:
            work.scene_cuts = chunk_scene_cuts(found, chunk, ctx.info.fps)

    work = Work(main, expected, run)
    return work


def _sound(ctx: JobContext) -> Work:
    """The transcode's sound over the whole source, alone: what the unchunked transcode would encode
    (its codec, bit rate, rate, channels, loudness normalisation), as an audio job of its preset."""
    if ctx.info.audio_codec is None:
        raise JobError("the source has no audio stream", "invalid")
    alone = msgspec.structs.replace(ctx.job, kind="audio")
    return single_output.plan(
        JobContext(alone, ctx.preset, ctx.url, ctx.info, ctx.tmp, ctx.max_bytes, ctx.limits)
    )
