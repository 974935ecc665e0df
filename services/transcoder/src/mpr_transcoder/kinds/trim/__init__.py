"""The ``trim`` kind: ``start``..``end`` of the source. With the ``accurate`` preset (codec ``smart``) a
frame-accurate smart cut (:mod:`.smart_cut`: planning in :mod:`.planning`, tables in :mod:`.codecs`,
argument lists in :mod:`.argv`) that keeps the source's text subtitle streams (:mod:`.subtitles`); with
``copy`` one stream copy cut on key frames (``single_output``)."""

from __future__ import annotations

import asyncio

from mpr_common.keys import extension

from ...ffmpeg.argv import NETWORK_PROTOCOLS
from ...job_errors import JobError
from ...steps import StepRunner
from .. import single_output
from ..base import JobContext, Work, expected_duration
from . import subtitles
from .codecs import container_for
from .planning import check_range
from .smart_cut import smart_trim


def plan(ctx: JobContext) -> Work:
    if ctx.preset.video_codec != "smart":
        return single_output.plan(ctx)
    job = ctx.job
    main = ctx.out_dir / f"output{extension(job.output_key or '') or '.mp4'}"

    async def trim(runner: StepRunner) -> None:
        try:
            container = container_for(main)
            start, end = check_range(ctx.info, job.start, job.end)
        except ValueError as exc:  # TrimRangeError, or an output container it cannot write
            raise JobError(str(exc), "invalid") from None
        kept = subtitles.kept(ctx.info, ctx.sidecars, container, ctx.tmp / "subs")
        # With subtitles, the cut is written beside the output dir (all of which is uploaded) and muxed
        # with them into the output; their conversion reads the source while the cut runs.
        cut = kept.work_dir / f"cut{main.suffix}" if kept.tracks else main
        converting = None
        if kept.tracks:
            await asyncio.to_thread(kept.work_dir.mkdir, parents=True, exist_ok=True)
            aside = runner.scoped(0.0, 0.0, by_time=False)
            runs = kept.conversions(ctx.url, NETWORK_PROTOCOLS, end)
            converting = asyncio.ensure_future(asyncio.gather(*(aside(args) for args in runs)))
        try:
            result = await smart_trim(
                ctx.url,
                ctx.info,
                job.start,
                job.end,
                ctx.tmp / "work",
                cut,
                runner.halving(),  # its steps work on shifted timelines
                name=job.source_key,
                max_bytes=ctx.max_bytes,
            )
            if converting is not None:
                await converting
        except ValueError as exc:  # TrimRangeError, or an output container it cannot write
            raise JobError(str(exc), "invalid") from None
        finally:
            if converting is not None and not converting.done():
                converting.cancel()
                await asyncio.gather(converting, return_exceptions=True)
        if kept.tracks:
            tracks, subs_dir = kept.tracks, kept.work_dir
            await subtitles.write_all(subs_dir, tracks, start, result.origin, result.duration, job.source_key)
            args = subtitles.mux_args(cut, container, tracks, subs_dir, main, ctx.max_bytes)
            await runner.scoped(95.0, 100.0, by_time=False)(args)

    return Work(main, expected_duration(job, ctx.info), trim, check_written=False)
