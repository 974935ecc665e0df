"""FFmpeg argument lists for each job kind and preset. Pure: no I/O, unit-tested.

Safety: the input is always a URL restricted by a protocol whitelist and a demuxer whitelist
(no playlists, no concat lists, no local files); options never come from user strings; the
argument list goes to ``exec`` directly, never through a shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpr_common.events import JobRequested, MediaInfo
from mpr_common.keys import extension
from mpr_common.mediainfo import INPUT_FORMATS, NETWORK_PROTOCOLS
from mpr_common.presets import Preset


@dataclass(frozen=True, slots=True)
class Plan:
    args: list[str]
    output_dir: Path
    main_output: Path  # the file uploaded to output_key
    expected_duration: float | None  # seconds of media the output will hold (for progress)
    # HLS media segments, uploaded while FFmpeg writes the next ones (see uploader.py)
    segment_glob: str | None = None


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def output_slack(duration: float) -> float:
    """How much longer than the probed duration an output may be (timestamps are rarely exact)."""
    return max(10.0, 0.05 * duration)


def _scale_height(h: int) -> str:
    return f"scale=-2:'trunc(min({h},ih)/2)*2'"


def leader_skip(duration: float | None) -> float:
    """Where a picture that stands for the whole source is taken: past black leaders, 10% in, at most 10 s."""
    return min(10.0, max(0.0, duration or 0.0) * 0.1)


def thumbnail_time(job: JobRequested, info: MediaInfo) -> float:
    return job.start if job.start is not None else leader_skip(info.duration)


GLOBAL_ARGS = [
    "ffmpeg",
    "-nostdin",
    "-hide_banner",
    "-nostats",
    "-loglevel",
    "error",
    "-y",
    "-progress",
    "pipe:1",
]


# Each source frame keeps its own timestamps: FFmpeg never writes a frame the source does not hold.
# The constant frame rate that MP4 gets by default copies a picture to fill each hole in the source's
# timeline (a source whose next frame is 40,000 s later costs a million encoded copies, minutes of CPU);
# with ``vfr`` the hole shows at once in the ``-progress`` time, where the runner refuses it
# (``ffmpeg_runner.FrameGaps``), and a variable frame rate source plays at its own pace. The 90 kHz
# encoder clock keeps frames closer than the declared rate's tick (a 50 fps stretch of a source declared
# at 25 fps), which ``vfr`` would otherwise drop as duplicates. Not for HLS: its muxer sums each
# segment's length from the frames' nominal durations (a variable frame rate segment of 2.5 s would be
# listed as 0.24 s), so HLS keeps a constant rate, where a jump shows as duplicates.
VIDEO_TIMING = ["-fps_mode", "vfr", "-enc_time_base:v", "1:90000"]


def input_args(
    input_url: str, start: float | None = None, *, protocols: str = NETWORK_PROTOCOLS
) -> list[str]:
    """The source as FFmpeg's input: whitelisted protocols and demuxers, a read timeout, and input
    seeking (FFmpeg jumps with HTTP range requests instead of reading the head)."""
    args = ["-protocol_whitelist", protocols, "-format_whitelist", INPUT_FORMATS, "-rw_timeout", "30000000"]
    if start:
        args += ["-ss", _fmt(start)]
    return args + ["-i", input_url]


def _codec(codec: str | None, preset: str) -> str:
    if codec is None:  # the preset table pairs each kind with presets that have the codec it needs
        raise ValueError(f"preset {preset!r} has no codec for this output")
    return codec


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
) -> Plan:
    """``job`` must be normalised (see ``mpr_common.jobs.normalize_job``).

    The output is bounded: no more video frames than the source holds (:data:`VIDEO_TIMING`),
    ``-fs max_output_bytes``, and ``-t`` at most the source's probed duration after
    the start plus :func:`output_slack` (``max_source_duration`` when the probe found none), so that
    timestamps that jump far ahead never make FFmpeg write hours of duplicated frames. ``audio_filter``
    (e.g. the second pass of loudness normalisation) applies when the sound is re-encoded."""
    has_video = info.video_codec is not None
    has_audio = info.audio_codec is not None
    start = job.start if job.kind != "thumbnail" else thumbnail_time(job, info)
    args = GLOBAL_ARGS + input_args(input_url, start)

    duration = info.duration
    expected: float | None
    if duration is not None:
        bound: float | None = max(0.0, duration - (start or 0.0)) + output_slack(duration)
    elif max_source_duration is not None:
        bound = max(0.0, max_source_duration - (start or 0.0))
    else:
        bound = None
    length = job.end - (start or 0.0) if job.end is not None else None
    if job.end is not None:
        expected = job.end - (start or 0.0)
        if duration is not None:
            expected = min(expected, max(0.0, duration - (start or 0.0)))
    else:
        expected = max(0.0, duration - (start or 0.0)) if duration is not None else None
    if bound is not None:
        length = bound if length is None else min(length, bound)
    if length is not None and job.kind != "thumbnail":  # a thumbnail is one frame (-frames:v 1)
        args += ["-t", _fmt(length)]

    out_ext = preset.extension or extension(job.output_key or "") or ".mp4"
    output_dir.mkdir(parents=True, exist_ok=True)
    main = output_dir / ("index.m3u8" if preset.container == "hls" else f"output{out_ext}")

    if job.kind == "thumbnail":
        if not has_video:
            raise ValueError("the source has no video stream to take a thumbnail from")
        args += [
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-vf",
            f"scale={preset.width}:-2",
            "-c:v",
            _codec(preset.video_codec, preset.name),
        ]
        if preset.video_codec == "mjpeg":
            args += ["-q:v", "3", "-pix_fmt", "yuvj420p"]
        args += ["-update", "1", "-f", "image2", str(main)]
        return Plan(args, output_dir, main, None)

    if job.kind == "audio":
        if not has_audio:
            raise ValueError("the source has no audio stream to extract")
        args += ["-map", "0:a:0", "-vn", "-c:a", _codec(preset.audio_codec, preset.name)]
    elif preset.video_codec == "copy":
        args += ["-map", "0:v?", "-map", "0:a?", "-c", "copy", "-avoid_negative_ts", "make_zero"]
    else:
        if not (has_video or has_audio):
            raise ValueError("the source has no audio or video stream")
        if has_video:
            args += ["-map", "0:v:0", "-c:v", _codec(preset.video_codec, preset.name)]
            if preset.container != "hls":
                args += VIDEO_TIMING
            if preset.height:
                args += ["-vf", _scale_height(preset.height)]
            if preset.video_codec == "libx264":
                args += [
                    "-preset",
                    preset.x264_preset,
                    "-crf",
                    str(preset.crf or 23),
                    "-pix_fmt",
                    "yuv420p",
                    "-profile:v",
                    "high",
                ]
            elif preset.video_codec == "libvpx-vp9":
                args += [
                    "-crf",
                    str(preset.crf or 33),
                    "-b:v",
                    "0",
                    "-deadline",
                    "good",
                    "-cpu-used",
                    "4",
                    "-row-mt",
                    "1",
                    "-pix_fmt",
                    "yuv420p",
                ]
            if preset.container == "hls" and preset.hls_segment_seconds:
                seg = preset.hls_segment_seconds
                args += ["-force_key_frames", f"expr:gte(t,n_forced*{seg})"]
        if has_audio:
            args += ["-map", "0:a:0", "-c:a", _codec(preset.audio_codec, preset.name)]
    if preset.audio_codec not in (None, "copy") and (has_audio or job.kind == "audio"):
        if audio_filter:
            args += ["-af", audio_filter]
        if preset.audio_bitrate:
            args += ["-b:a", preset.audio_bitrate]
        if preset.audio_rate:
            args += ["-ar", str(preset.audio_rate)]
        if preset.channels:
            args += ["-ac", str(preset.channels)]

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
    return Plan(args, output_dir, main, expected)
