"""The ``trim`` kind: ``start``..``end`` of the source. With the ``accurate`` preset (codec ``smart``) a
frame-accurate smart cut (:mod:`.smart_cut`: planning in :mod:`.planning`, tables in :mod:`.codecs`,
argument lists in :mod:`.argv`); with ``copy`` one stream copy cut on key frames, with a re-encoding
preset one encode of the range (``single_output``). Every one keeps the source's text subtitle streams
and sidecars (:mod:`.subtitles`), cues cut to what the output shows, on its timeline."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from mpr_common.keys import extension

from ...ffmpeg.argv import NETWORK_PROTOCOLS, fmt
from ...ffmpeg.probe import ffprobe_output
from ...job_errors import JobError
from ...steps import StepRunner
from ...together import together
from .. import single_output
from ..base import JobContext, Work, expected_duration
from . import subtitles
from .argv import cut_probe_args, first_packets_output
from .codecs import container_for
from .planning import check_range, copy_origin, first_packet_time, parse_cut_probe
from .smart_cut import PROBE_TIMEOUT, smart_trim


def plan(ctx: JobContext) -> Work:
    if ctx.preset.video_codec != "smart":
        return _one_command(ctx)
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
            converting = asyncio.ensure_future(_convert(kept, ctx.url, end, aside))
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


def _one_command(ctx: JobContext) -> Work:
    """A ``copy`` or re-encoding trim: ``single_output``'s command, its output written aside when the
    output keeps subtitles, then muxed with them (converted while the command runs, cut to what it
    wrote: see :func:`origin`)."""
    job = ctx.job
    try:
        container = container_for(Path(single_output.output_name(job, ctx.preset)))
    except ValueError:  # a type a trim's subtitles never go into: single_output says what it makes of it
        return single_output.plan(ctx)
    kept = subtitles.kept(ctx.info, ctx.sidecars, container, ctx.tmp / "subs")
    if not kept.tracks:
        return single_output.plan(ctx)
    tracks, subs_dir = kept.tracks, kept.work_dir
    copying = ctx.preset.video_codec == "copy"
    listing = subs_dir / "first-packets.crc"
    start = job.start or 0.0
    end = job.end if job.end is not None else math.inf  # the conversions read a little past it

    async def convert(runner: StepRunner) -> None:
        await asyncio.to_thread(subs_dir.mkdir, parents=True, exist_ok=True)
        await _convert(kept, ctx.url, end, runner)

    async def then(runner: StepRunner, cut: Path) -> None:
        text = await ffprobe_output(
            cut_probe_args(cut, subtitles.demuxer(container)), PROBE_TIMEOUT, "the cut"
        )
        written, duration = parse_cut_probe(text)
        zero = await origin(copying, start, listing, written)
        if duration is None:
            duration = expected_duration(job, ctx.info) or 0.0
        await subtitles.write_all(subs_dir, tracks, zero, zero, duration, job.source_key)
        await asyncio.to_thread(ctx.out_dir.mkdir, parents=True, exist_ok=True)
        main = ctx.out_dir / cut.name
        args = subtitles.mux_args(cut, container, tracks, subs_dir, main, ctx.max_bytes, keep_tags=True)
        await runner.scoped(95.0, 100.0, by_time=False)(args)

    extra = first_packets_output(single_output.COPIED_STREAMS, listing) if copying else []
    finish = single_output.Finish(subs_dir / "cut", then, beside=convert, extra=extra)
    return single_output.plan(ctx, finish)


async def _convert(kept: subtitles.Kept, url: str, end: float, run: StepRunner) -> None:
    """Each kept track converted to WebVTT (the source read up to ``end``), all at once: the first
    failure stops the others."""
    await together(*(run(args) for args in kept.conversions(url, NETWORK_PROTOCOLS, end)))


async def origin(copying: bool, start: float, listing: Path, written: float | None) -> float:
    """The source's second at the output's time 0. A re-encoding trim's command seeks accurately: it is
    ``start`` as the command has it (the millisecond). A copying one starts from the key frame at or
    before ``start`` and its muxer moves its timeline to begin at the lowest decode time of any stream:
    it is read from the command's first packet as its second output listed it and as the output has it
    (``written``)."""
    seek = float(fmt(start)) if start else 0.0
    if not copying:
        return seek
    try:
        text = await asyncio.to_thread(listing.read_text, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    return copy_origin(seek, first_packet_time(text), written)
