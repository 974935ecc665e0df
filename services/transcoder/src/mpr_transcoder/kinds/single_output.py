"""The kinds that run as one FFmpeg command (``transcode``, ``audio``, ``thumbnail``, ``hls``, and a
``trim`` with the ``copy`` preset or a re-encoding one): its argument list for each preset
(:func:`build_plan`, pure, unit-tested) and the kind's plan. A kind may finish the command's output with
steps of its own (:class:`Finish`: a trim muxes the source's subtitles into it).

Safety: the input is the source's URL under the protocol and demuxer whitelists (``ffmpeg.argv``); options
never come from user strings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mpr_common.events import JobRequested, MediaInfo
from mpr_common.keys import extension
from mpr_common.presets import Preset
from mpr_common.scenes import key_frame_times

from ..burn_in import BURNT, CONVERTED, burn_filter, write_burn_file
from ..ffmpeg.argv import GLOBAL_ARGS, VIDEO_TIMING, fmt, input_args, output_slack
from ..ffmpeg.filtergraph import WatermarkSource, watermark_inputs, watermark_outputs
from ..ffmpeg.scdet import read_scenes, scene_output
from ..job_errors import JobError
from ..quality import encode_measured
from ..steps import StepRunner
from ..together import together
from .base import JobContext, Work, with_loudness
from .colour import SDR_TAGS, to_sdr_filter


@dataclass(frozen=True, slots=True)
class Plan:
    args: list[str]
    output_dir: Path
    main_output: Path  # the file uploaded to output_key
    expected_duration: float | None  # seconds of media the output will hold (for progress)
    # HLS media segments, uploaded while FFmpeg writes the next ones (see ..uploader)
    segment_glob: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Steps of a kind after the command: the command writes its output into ``cut_dir`` (not uploaded)
    under the name it would have in the output dir, with ``extra`` outputs after it (arguments: the
    second output's options and file); ``beside(runner)`` runs while it does, and ``then(runner, cut)``
    writes the job's output (the same name in the output dir) from that file, as the last 5 % of the
    progress."""

    cut_dir: Path
    then: Callable[[StepRunner, Path], Awaitable[None]]
    beside: Callable[[StepRunner], Awaitable[None]] | None = None
    extra: list[str] = field(default_factory=list)


# What a stream copy keeps of the source: every picture and sound stream.
COPIED_STREAMS = ("-map", "0:v?", "-map", "0:a?")


def output_name(job: JobRequested, preset: Preset) -> str:
    """The file the command writes (in the output dir): ``index.m3u8`` for HLS, else ``output`` with the
    preset's extension, the output key's, or ``.mp4``."""
    if preset.container == "hls":
        return "index.m3u8"
    return f"output{preset.extension or extension(job.output_key or '') or '.mp4'}"


def scale_height(h: int) -> str:
    return f"scale=-2:'trunc(min({h},ih)/2)*2'"


def leader_skip(duration: float | None) -> float:
    """Where a picture that stands for the whole source is taken: past black leaders, 10% in, at most 10 s."""
    return min(10.0, max(0.0, duration or 0.0) * 0.1)


def thumbnail_time(job: JobRequested, info: MediaInfo) -> float:
    return job.start if job.start is not None else leader_skip(info.duration)


def _codec(codec: str | None, preset: str) -> str:
    if codec is None:  # the preset table pairs each kind with presets that have the codec it needs
        raise ValueError(f"preset {preset!r} has no codec for this output")
    return codec


def _length_and_expected(
    job: JobRequested, info: MediaInfo, start: float | None, max_source_duration: float | None
) -> tuple[float | None, float | None]:
    """The output's ``-t`` (its range, bounded by the source's probed duration plus
    :func:`output_slack`, or ``max_source_duration``), and the seconds of media it should hold."""
    duration = info.duration
    if duration is not None:
        bound: float | None = max(0.0, duration - (start or 0.0)) + output_slack(duration)
    elif max_source_duration is not None:
        bound = max(0.0, max_source_duration - (start or 0.0))
    else:
        bound = None
    length = job.end - (start or 0.0) if job.end is not None else None
    expected: float | None
    if job.end is not None:
        expected = job.end - (start or 0.0)
        if duration is not None:
            expected = min(expected, max(0.0, duration - (start or 0.0)))
    else:
        expected = max(0.0, duration - (start or 0.0)) if duration is not None else None
    if bound is not None:
        length = bound if length is None else min(length, bound)
    return length, expected


def _thumbnail_args(preset: Preset, info: MediaInfo, main: Path) -> list[str]:
    if info.video_codec is None:
        raise ValueError("the source has no video stream to take a thumbnail from")
    to_sdr = to_sdr_filter(info)  # an HDR source's thumbnail is SDR, tone-mapped after scaling
    scale = f"scale={preset.width}:-2" + (f",{to_sdr}" if to_sdr else "")
    args = ["-map", "0:v:0", "-frames:v", "1", "-vf", scale]
    args += ["-c:v", _codec(preset.video_codec, preset.name)]
    if preset.video_codec == "mjpeg":
        args += ["-q:v", "3", "-pix_fmt", "yuvj420p"]
    return args + ["-update", "1", "-f", "image2", str(main)]


def video_encoder(preset: Preset) -> list[str]:
    if preset.video_codec == "libx264":
        crf = str(preset.crf or 23)
        return ["-preset", preset.x264_preset, "-crf", crf, "-pix_fmt", "yuv420p", "-profile:v", "high"]
    if preset.video_codec == "libvpx-vp9":
        args = ["-crf", str(preset.crf or 33), "-b:v", "0", "-deadline", "good", "-cpu-used", "4"]
        return args + ["-row-mt", "1", "-pix_fmt", "yuv420p"]
    return []


def _stream_args(
    job: JobRequested,
    preset: Preset,
    info: MediaInfo,
    watermark: WatermarkSource | None = None,
    burn: Path | None = None,
    key_frames: Sequence[float] = (),
) -> list[str]:
    """Which streams go to the output and how they are encoded (the sound's options aside); with a
    watermark, the picture comes from its filter graph (its image is the second input)."""
    has_video = info.video_codec is not None
    has_audio = info.audio_codec is not None
    if job.kind == "audio":
        if not has_audio:
            raise ValueError("the source has no audio stream to extract")
        return ["-map", "0:a:0", "-vn", "-c:a", _codec(preset.audio_codec, preset.name)]
    if preset.video_codec == "copy":
        return [*COPIED_STREAMS, "-c", "copy", "-avoid_negative_ts", "make_zero"]
    if not (has_video or has_audio):
        raise ValueError("the source has no audio or video stream")
    args: list[str] = []
    if watermark is not None and not has_video:
        raise ValueError("watermark: the source has no video stream to draw it on")
    if has_video:
        args += _video_stream_args(preset, watermark, burn, to_sdr_filter(info), key_frames)
    elif burn is not None:
        raise ValueError("burn_subtitles: the source has no video stream to draw them on")
    if has_audio:
        args += ["-map", "0:a:0", "-c:a", _codec(preset.audio_codec, preset.name)]
    return args


def _video_stream_args(
    preset: Preset,
    watermark: WatermarkSource | None,
    burn: Path | None = None,
    to_sdr: str | None = None,
    key_frames: Sequence[float] = (),
) -> list[str]:
    """The picture's stream options. Every video preset of a single output encodes SDR (H.264, VP9 at
    8 bits): ``to_sdr``, an HDR source's tone mapping, runs after the scaling (fewer pixels) and before
    subtitles or a watermark are drawn (they are SDR), and the output is tagged BT.709. ``key_frames``:
    seconds of the output where a key frame is forced (its scene cuts), besides the encoder's own."""
    filters = [scale_height(preset.height)] if preset.height else []
    if to_sdr:
        filters.append(to_sdr)
    if burn is not None:  # drawn on the scaled picture, at the output's size
        filters.append(burn_filter(burn))
    scale = ",".join(filters) or "null"
    args = watermark_outputs(scale, watermark) if watermark is not None else ["-map", "0:v:0"]
    args += ["-c:v", _codec(preset.video_codec, preset.name)]
    if preset.container != "hls":
        args += VIDEO_TIMING
    if filters and watermark is None:
        args += ["-vf", scale]
    args += video_encoder(preset)
    if to_sdr:
        args += SDR_TAGS
    if preset.container == "hls" and preset.hls_segment_seconds:
        seg = preset.hls_segment_seconds
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{seg})"]
    elif key_frames:
        args += ["-force_key_frames", ",".join(fmt(t) for t in key_frames)]
    return args


def _sound_options(job: JobRequested, preset: Preset, info: MediaInfo, audio_filter: str | None) -> list[str]:
    if preset.audio_codec in (None, "copy") or not (info.audio_codec is not None or job.kind == "audio"):
        return []
    args = ["-af", audio_filter] if audio_filter else []
    if preset.audio_bitrate:
        args += ["-b:a", preset.audio_bitrate]
    if preset.audio_rate:
        args += ["-ar", str(preset.audio_rate)]
    if preset.channels:
        args += ["-ac", str(preset.channels)]
    return args


def build_plan(
    job: JobRequested,
    preset: Preset,
    input_url: str,
    info: MediaInfo,
    output_dir: Path,
    max_output_bytes: int,
    *,
    max_source_duration: float | None = None,
    audio_filter: str | None = None,
    watermark: WatermarkSource | None = None,
    burn: Path | None = None,
    key_frames: Sequence[float] = (),
    find_scenes: bool = False,
) -> Plan:
    """``job`` must be normalised (see ``mpr_common.jobs.normalize_job``).

    The output is bounded: no more video frames than the source holds (:data:`VIDEO_TIMING`),
    ``-fs max_output_bytes``, and ``-t`` at most the source's probed duration after
    the start plus :func:`output_slack` (``max_source_duration`` when the probe found none), so that
    timestamps that jump far ahead never make FFmpeg write hours of duplicated frames. ``audio_filter``
    (e.g. the second pass of loudness normalisation) applies when the sound is re-encoded; ``watermark``
    is drawn over the scaled picture, after the subtitles of the WebVTT file ``burn``; ``key_frames``
    (seconds of the output) are forced key frames of its video, when it is encoded and not HLS;
    ``find_scenes``: the scene detector is a second output (:func:`~..ffmpeg.scdet.scene_output`), its
    cuts in the command's report."""
    start = job.start if job.kind != "thumbnail" else thumbnail_time(job, info)
    args = GLOBAL_ARGS + input_args(input_url, start)
    if watermark is not None and job.kind != "thumbnail":  # its image: an input, before any output option
        args += watermark_inputs(watermark)
    length, expected = _length_and_expected(job, info, start, max_source_duration)
    if length is not None and job.kind != "thumbnail":  # a thumbnail is one frame (-frames:v 1)
        args += ["-t", fmt(length)]

    output_dir.mkdir(parents=True, exist_ok=True)
    main = output_dir / output_name(job, preset)
    out_ext = main.name.removeprefix("output")
    if job.kind == "thumbnail":
        return Plan(args + _thumbnail_args(preset, info, main), output_dir, main, None)

    args += _stream_args(job, preset, info, watermark, burn, key_frames)
    args += _sound_options(job, preset, info, audio_filter)
    args += ["-fs", str(max_output_bytes)]
    if preset.container == "hls":
        args += [
            "-f",
            "hls",
            "-hls_time",
            str(preset.hls_segment_seconds or 4),
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
            # Named after the job: two playlists in one folder never share (or overwrite) segments.
            str(output_dir / f"{job.job_id}_%05d.ts"),
            str(main),
        ]
        return Plan(args, output_dir, main, expected, segment_glob=f"{job.job_id}_*.ts")
    if out_ext in (".mp4", ".m4v", ".mov", ".m4a"):
        args += ["-movflags", "+faststart"]
    if preset.container:
        args += ["-f", preset.container]
    args += [str(main)]
    if find_scenes and info.video_codec is not None:
        args += scene_output(fmt(length) if length is not None else None)
    return Plan(args, output_dir, main, expected)


def plan(ctx: JobContext, finish: Finish | None = None) -> Work:
    """One command; with loudness normalisation, its first pass before it; with burnt-in subtitles,
    their conversion (:mod:`..burn_in`) before it; with ``finish``, its steps after it. A transcode's
    video gets key frames at its source's scene cuts when they are kept (:mod:`..scene_store`); when they
    are not, its command finds them on the way (the scene detector as a second output of the picture it
    decodes anyway) and keeps them for the jobs after it."""
    burning = ctx.subtitles if ctx.job.burn_subtitles is not None and ctx.job.kind == "transcode" else None
    burn = ctx.tmp / BURNT if burning is not None else None

    def command(
        audio_filter: str | None = None, key_frames: Sequence[float] = (), find_scenes: bool = False
    ) -> Plan:
        try:
            return build_plan(
                ctx.job,
                ctx.preset,
                ctx.url,
                ctx.info,
                ctx.out_dir if finish is None else finish.cut_dir,
                ctx.max_bytes,
                max_source_duration=ctx.limits.max_source_duration or None,
                audio_filter=audio_filter,
                watermark=ctx.watermark,
                burn=burn,
                key_frames=key_frames,
                find_scenes=find_scenes,
            )
        except ValueError as exc:
            raise JobError(str(exc), "invalid") from None

    first = command()
    extra = finish.extra if finish is not None else []
    top = 100.0 if finish is None else 95.0

    async def single(runner: StepRunner) -> None:
        if burning is not None and burn is not None:
            converted = ctx.tmp / CONVERTED
            await runner.scoped(0.0, 1.0, by_time=False)(burning.webvtt_args(converted))
            write_burn_file(converted, burn, ctx.job.start, burning.name)

        scenes = ctx.scenes if _cuts_key_frames(ctx) else None
        known = await scenes.known() if scenes is not None else None
        key_frames = key_frame_times(known, ctx.job.start or 0.0, ctx.job.end) if known else []
        # unknown: found on the way, for the jobs after this one, when this one decodes the whole source
        find = scenes is not None and known is None and not ctx.job.start and ctx.job.end is None
        found: list[float] = []

        def read_found(report: Path) -> None:
            found.extend(read_scenes(report))

        async def encode(audio_filter: str | None) -> None:
            main = runner.scoped(30.0 if audio_filter else 0.0, top)
            changed = audio_filter or key_frames or find
            args = [*(command(audio_filter, key_frames, find) if changed else first).args, *extra]
            work.quality = await encode_measured(main, args, ctx.tmp, on_report=read_found if find else None)
            runner.written = main.written
            if find and scenes is not None:
                await scenes.keep(found)

        if finish is None:
            await with_loudness(ctx, work, runner, encode)
            return
        encoding = with_loudness(ctx, work, runner, encode)
        if finish.beside is None:
            await encoding
        else:  # its progress not counted
            await together(encoding, finish.beside(runner.scoped(0.0, 0.0, by_time=False)))
        await finish.then(runner, first.main_output)

    main = first.main_output if finish is None else ctx.out_dir / first.main_output.name
    work = Work(main, first.expected_duration, single, segment_glob=first.segment_glob)
    return work


def _cuts_key_frames(ctx: JobContext) -> bool:
    """Whether the job's output gets key frames at its source's scene cuts: a transcode that encodes
    video into one file (HLS keeps its segments' fixed key frames)."""
    preset = ctx.preset
    return (
        ctx.job.kind == "transcode"
        and ctx.info.video_codec is not None
        and preset.video_codec not in (None, "copy")
        and preset.container != "hls"
    )
