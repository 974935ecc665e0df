"""The ``trim`` kind: ``start``..``end`` of the source. With the ``accurate`` preset (codec ``smart``) a
frame-accurate smart cut (:mod:`.smart_cut`: planning in :mod:`.planning`, tables in :mod:`.codecs`,
argument lists in :mod:`.argv`); with ``copy`` one stream copy cut on key frames (``single_output``)."""

from __future__ import annotations

from mpr_common.keys import extension

from ...job_errors import JobError
from ...steps import StepRunner
from .. import single_output
from ..base import JobContext, Work, expected_duration
from .smart_cut import smart_trim


def plan(ctx: JobContext) -> Work:
    if ctx.preset.video_codec != "smart":
        return single_output.plan(ctx)
    job = ctx.job
    main = ctx.out_dir / f"output{extension(job.output_key or '') or '.mp4'}"

    async def trim(runner: StepRunner) -> None:
        try:
            await smart_trim(
                ctx.url,
                ctx.info,
                job.start,
                job.end,
                ctx.tmp / "work",
                main,
                runner.halving(),  # its steps work on shifted timelines
                name=job.source_key,
                max_bytes=ctx.max_bytes,
            )
        except ValueError as exc:  # TrimRangeError, or an output container it cannot write
            raise JobError(str(exc), "invalid") from None

    return Work(main, expected_duration(job, ctx.info), trim, check_written=False)
