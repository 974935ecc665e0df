"""The ``rendition`` kind: one CMAF rendition of an adaptive package (a rung of its ladder, or its
sound, or a subtitle track: :mod:`.subtitles`), run as a child job of the package; its description (what the manifests are written from) goes
with its completion. A chunk child (``job.chunk``) encodes one chunk of a video rung: :mod:`.chunks`.
Commands and the reading of what FFmpeg wrote: :mod:`.cmaf`."""

from __future__ import annotations

import asyncio
from functools import partial

import msgspec

from mpr_common.audio_tracks import is_audio_rendition, track_label
from mpr_common.content_keys import CENC, key_uri
from mpr_common.events import AudioStream, ChunkSpan, MediaInfo
from mpr_common.presets import Rung
from mpr_common.quality import without_frames
from mpr_common.subtitles import is_subtitle_rendition

from ...ffmpeg.argv import input_args
from ...ffmpeg.probe import with_hdr_metadata
from ...job_errors import JobError
from ...quality import encode_measured
from ...steps import StepRunner
from ..base import JobContext, Work, with_loudness
from ..colour import rung_range
from ..package.protection import cenc_playlist
from .cenc import CencSealer
from .chunks import finish_chunk
from .cmaf import chunk_playlist_name, chunk_rendition_args, describe_rendition, rendition_args
from .encryption import SegmentSealer
from .subtitles import plan_subtitles


async def _rung_info(ctx: JobContext, rung: Rung) -> MediaInfo:
    """The source's probe, with the HDR metadata of its first frame for a rung that keeps HDR (every
    chunk of a rung reads the same frame: their init segments stay alike)."""
    if rung_range(rung, ctx.info) == "sdr":
        return ctx.info
    limits = ctx.limits
    return await with_hdr_metadata(
        ctx.info, ctx.url, limits.probe_timeout, max_memory=limits.ffmpeg_max_memory or None
    )


def plan(ctx: JobContext) -> Work:
    preset, info = ctx.preset, ctx.info
    name = ctx.job.rendition or ""
    if is_subtitle_rendition(name):
        return plan_subtitles(ctx, name)
    rung = next((r for r in preset.ladder if r.name == name), None)
    if rung is None and not is_audio_rendition(name):
        raise JobError(f"rendition {name!r} is not in ladder {preset.name!r}", "invalid")
    if rung is not None and ctx.job.rung is not None:  # a per-title package chose this rung's rate
        chosen = ctx.job.rung
        rung = msgspec.structs.replace(
            rung, crf=chosen.crf, max_rate=chosen.max_rate, buf_size=chosen.buf_size
        )
    if (info.video_codec if rung else info.audio_codec) is None:
        raise JobError(
            f"the source has no {'video' if rung else 'audio'} stream for rendition {name}", "invalid"
        )
    # an audio rendition planned before packages had audio tracks: the first audio stream
    audio = None if rung else ctx.job.audio_stream or AudioStream(index=0)
    if ctx.job.chunk is not None:
        if rung is None:
            raise JobError(
                "the audio rendition is never chunked (its sound would click at the joins)", "invalid"
            )
        return _sealed(ctx, _plan_chunk(ctx, rung, ctx.job.chunk))

    async def rendition(runner: StepRunner) -> None:
        async def encode(audio_filter: str | None) -> None:
            main = runner.scoped(30.0 if audio_filter else 0.0, 100.0)
            args = rendition_args(
                input_args(ctx.url),
                preset,
                rung,
                await _rung_info(ctx, rung) if rung else info,
                ctx.out_dir,
                loudnorm_filter=audio_filter,
                watermark=ctx.watermark if rung else None,
                audio_name=name,
                audio_index=0 if audio is None else audio.index,
            )
            work.quality = await encode_measured(main, args, ctx.tmp)
            runner.written = main.written

        await with_loudness(ctx, work, runner, encode)
        described = await asyncio.to_thread(describe_rendition, ctx.out_dir, name, rung)
        described.quality = work.quality
        if audio is not None and ctx.job.audio_stream is not None:
            described.language = audio.language
            described.label = track_label(audio)
        work.rendition = described

    work = Work(ctx.out_dir / f"{name}.m3u8", info.duration, rendition, segment_glob=f"{name}_*.m4s")
    return _sealed(ctx, work)


def _sealed(ctx: JobContext, work: Work) -> Work:
    """An encrypted package's rendition: its segments and playlist encrypted and keyed as uploaded."""
    if ctx.job.encryption is None:
        return work
    if ctx.content_key is None or ctx.job.parent_id is None:
        raise JobError(f"no content key for the {ctx.job.encryption} package of this rendition", "invalid")
    key, kid = ctx.content_key
    if ctx.job.encryption == CENC:
        if kid is None:
            raise JobError(f"the cenc package {ctx.job.parent_id} has no key ID", "invalid")
        work.seal = CencSealer(key, kid, partial(cenc_playlist, kid=kid))
    else:
        work.seal = SegmentSealer(key, key_uri(ctx.job.parent_id))
    return work


def _plan_chunk(ctx: JobContext, rung: Rung, chunk: ChunkSpan) -> Work:
    """One chunk of a video rung (no loudness step: only the sound is normalised, and it is not chunked).

    Its outputs: the chunk's media segments (placed in the title before any is uploaded, so none is
    uploaded while FFmpeg writes), the first chunk's init segment, and the chunk's own media playlist as
    the main output, which the stitched rung's playlist replaces."""
    end = chunk.end if chunk.end is not None else ctx.info.duration
    expected = None if end is None else max(0.0, end - chunk.start)

    async def run(runner: StepRunner) -> None:
        main = runner.scoped(0.0, 100.0)
        source = input_args(ctx.url, chunk.start, end=chunk.end)
        info = await _rung_info(ctx, rung)
        args = chunk_rendition_args(
            source, ctx.preset, rung, info, ctx.out_dir, chunk, watermark=ctx.watermark
        )
        # with its frames' values, for the rung stitched from its chunks (the chunk job's own without)
        measured = await encode_measured(main, args, ctx.tmp, keep_frames=True)
        runner.written = main.written
        work.rendition = await asyncio.to_thread(finish_chunk, ctx.out_dir, rung.name, rung, chunk)
        work.rendition.quality = measured
        work.quality = without_frames(measured)

    work = Work(ctx.out_dir / chunk_playlist_name(rung.name, chunk.index), expected, run)
    return work
