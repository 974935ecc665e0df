"""The parts every FFmpeg and ffprobe command line of the transcoder shares, written here once: the global
arguments, the inputs with their protocol and demuxer whitelists (the main guard against crafted media:
no playlists, no concat lists, no local files from a URL), and the output bounds.

Safety: options never come from user strings; the argument list goes to ``exec`` directly, never through a
shell (see :mod:`.process`)."""

from __future__ import annotations

import re
from pathlib import Path

# Defined in mpr_common (the catalog's ffprobe reads sources through the same whitelists); the transcoder
# takes them from here only.
from mpr_common.mediainfo import INPUT_FORMATS, NETWORK_PROTOCOLS
from mpr_common.overlays import WATERMARK_FORMATS
from mpr_common.subtitles import SUBTITLE_FORMATS

# Every FFmpeg command: no stdin, errors only, overwrite, ``-progress`` reports on stdout (see .runner).
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
FFPROBE_ARGS = ["ffprobe", "-v", "error", "-hide_banner"]

# Protocols for files the job wrote itself in its work dir, and for joining them (MPEG-TS byte by byte).
LOCAL_FILES = "file"
LOCAL_CONCAT = "file,concat"
# A read of the source gives up after 30 s without data.
READ_TIMEOUT = ["-rw_timeout", "30000000"]


def global_args(loglevel: str = "error") -> list[str]:
    """:data:`GLOBAL_ARGS`, at another log level (loudnorm prints its measurement at ``info``)."""
    args = list(GLOBAL_ARGS)
    args[args.index("-loglevel") + 1] = loglevel
    return args


def whitelist(protocols: str, formats: str) -> list[str]:
    """The input options that bound what FFmpeg may open: these protocols and these demuxers only."""
    return ["-protocol_whitelist", protocols, "-format_whitelist", formats]


def fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def source_input(
    url: str, seek: str | None = None, *, stop: str | None = None, protocols: str = NETWORK_PROTOCOLS
) -> list[str]:
    """The job's source as FFmpeg's input: whitelisted protocols and demuxers (:data:`INPUT_FORMATS`), a
    read timeout, and input seeking to ``seek`` (FFmpeg jumps with HTTP range requests instead of reading
    the head). With ``stop``, the input ends there: FFmpeg stops reading, and keeps exactly the frames
    presented before it (the frames from ``seek`` on, decoded from the key frame before it)."""
    args = [*whitelist(protocols, INPUT_FORMATS), *READ_TIMEOUT]
    if seek is not None:
        args += ["-ss", seek]
    if stop is not None:
        args += ["-to", stop]
    return args + ["-i", url]


def input_args(
    input_url: str,
    start: float | None = None,
    *,
    end: float | None = None,
    protocols: str = NETWORK_PROTOCOLS,
) -> list[str]:
    """:func:`source_input` of the source's seconds ``[start, end)`` (millisecond precision)."""
    return source_input(
        input_url,
        fmt(start) if start else None,
        stop=None if end is None else fmt(end),
        protocols=protocols,
    )


def image_input(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    """A watermark image as an input: the image demuxers of PNG and JPEG only (whatever its key's
    name says), a read timeout."""
    return [*whitelist(protocols, ",".join(WATERMARK_FORMATS)), *READ_TIMEOUT, "-i", url]


def subtitle_file_input(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    """A subtitle file as an input: the SRT and WebVTT demuxers only (whatever its content claims), a
    read timeout."""
    return [*whitelist(protocols, SUBTITLE_FORMATS), *READ_TIMEOUT, "-i", url]


def image_probe_args(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    """ffprobe of a watermark image: its demuxer's name and its picture's size, as JSON."""
    return [
        *FFPROBE_ARGS,
        *whitelist(protocols, ",".join(WATERMARK_FORMATS)),
        *READ_TIMEOUT,
        "-show_entries",
        "format=format_name:stream=codec_type,width,height",
        "-of",
        "json",
        url,
    ]


def local_input(path: Path, formats: str = INPUT_FORMATS) -> list[str]:
    """Input arguments for a local file (tests, the benchmark's raw ladder, a job's own intermediate
    files): protocol ``file`` only, the demuxers ``formats`` (a source's by default)."""
    return [*whitelist(LOCAL_FILES, formats), "-i", str(path)]


def output_slack(duration: float) -> float:
    """How much longer than the probed duration an output may be (timestamps are rarely exact)."""
    return max(10.0, 0.05 * duration)


def size_limit(max_bytes: int | None) -> list[str]:
    """FFmpeg's own bound on an output file's size (none when ``max_bytes`` is None or 0)."""
    return ["-fs", str(max_bytes)] if max_bytes else []


# Each source frame keeps its own timestamps: FFmpeg never writes a frame the source does not hold.
# The constant frame rate that MP4 gets by default copies a picture to fill each hole in the source's
# timeline (a source whose next frame is 40,000 s later costs a million encoded copies, minutes of CPU);
# with ``vfr`` the hole shows at once in the ``-progress`` time, where the runner refuses it
# (``progress.FrameGaps``), and a variable frame rate source plays at its own pace. The 90 kHz
# encoder clock keeps frames closer than the declared rate's tick (a 50 fps stretch of a source declared
# at 25 fps), which ``vfr`` would otherwise drop as duplicates. Not for HLS: its muxer sums each
# segment's length from the frames' nominal durations (a variable frame rate segment of 2.5 s would be
# listed as 0.24 s), so HLS keeps a constant rate, where a jump shows as duplicates.
VIDEO_TIMING = ["-fps_mode", "vfr", "-enc_time_base:v", "1:90000"]


def writes_source_frames(args: list[str]) -> bool:
    """The command writes each source frame at its own time (:data:`VIDEO_TIMING`), nothing else."""
    n = len(VIDEO_TIMING)
    return any(args[i : i + n] == VIDEO_TIMING for i in range(len(args) - n + 1))


# An option that names a stream's codec (``-c:v libx264``, ``-codec:a aac``, ``-c copy``): the output it
# belongs to is the one the pair precedes.
_CODEC_OPTION = re.compile(r"-(?:c|codec|vcodec|acodec)(?::\S*)?")


def bounded_threads(args: list[str], threads: int) -> list[str]:
    """``args`` (one FFmpeg command) using at most ``threads`` threads for each decoder, encoder and filter
    graph: ``-threads`` before every input and after every codec choice (an output option, so it binds
    the output that choice belongs to), ``-filter_threads``/``-filter_complex_threads`` given once. Only
    whole option pairs are added, before ``-i`` or after a codec option and its value, so no existing
    option is parted from its value. ``threads`` 0: the command as it is (FFmpeg's own choice, one thread
    or more per core)."""
    if threads <= 0 or not args or args[0] != "ffmpeg":
        return list(args)
    n = str(threads)
    out = [args[0], "-filter_threads", n, "-filter_complex_threads", n]
    i = 1
    while i < len(args):
        token = args[i]
        if token == "-i":
            out += ["-threads", n]
        out.append(token)
        if _CODEC_OPTION.fullmatch(token) and i + 1 < len(args):
            out += [args[i + 1], "-threads", n]
            i += 1
        i += 1
    return out
