"""The ``rendition`` kind: one CMAF rendition of an adaptive package (a rung of its ladder, or its
sound), run as a child job of the package; its description (what the manifests are written from) goes
with its completion. Commands and the reading of what FFmpeg wrote: :mod:`.cmaf`."""

from __future__ import annotations

import asyncio

from mpr_common.presets import AUDIO_RENDITION

from ...ffmpeg.argv import input_args
from ...job_errors import JobError
from ...steps import StepRunner
from ..base import JobContext, Work, with_loudness
from .cmaf import describe_rendition, rendition_args


def plan(ctx: JobContext) -> Work:
    preset, info = ctx.preset, ctx.info
    name = ctx.job.rendition or ""
    rung = next((r for r in preset.ladder if r.name == name), None)
    if rung is None and name != AUDIO_RENDITION:
        raise JobError(f"rendition {name!r} is not in ladder {preset.name!r}", "invalid")
    if (info.video_codec if rung else info.audio_codec) is None:
        raise JobError(
            f"the source has no {'video' if rung else 'audio'} stream for rendition {name}", "invalid"
        )

    async def rendition(runner: StepRunner) -> None:
        async def encode(audio_filter: str | None) -> None:
            main = runner.scoped(30.0 if audio_filter else 0.0, 100.0)
            args = rendition_args(
                input_args(ctx.url), preset, rung, info, ctx.out_dir, loudnorm_filter=audio_filter
            )
            await main(args)
            runner.written = main.written

        await with_loudness(ctx, work, runner, encode)
        work.rendition = await asyncio.to_thread(describe_rendition, ctx.out_dir, name, rung)

    work = Work(ctx.out_dir / f"{name}.m3u8", info.duration, rendition, segment_glob=f"{name}_*.m4s")
    return work
