"""Frame-accurate trims ("smart cut"): the output holds the frames shown in ``[start, end)``, so it lasts
``end - start`` within one frame, and keeps the source's codec; only the partial GOPs at both edges are
re-encoded.

The steps, each FFmpeg run through the job's :data:`Runner` (its limits, cancel signal and progress):

1. **One read over the network.** A stream copy of the range, from the key frame at or before the start
   to a little past the end, into a local NUT file (NUT keeps every codec and the source's time bases).
   Its timestamps are the source's presentation times plus :data:`BASE` seconds: NUT cannot hold the
   negative decode times that B-frames give at a source's start, and a known offset keeps every later
   step exact. Everything below reads that local file only.
2. **ffprobe** lists the local file's packets; :func:`plan_cut` (pure) picks the frames whose timestamp
   falls in ``[start, end)`` and the *clean* key frames (no frame after them in decode order is shown
   before them: closed GOPs) that bound the whole GOPs inside the range.
3. **Concurrently**: the whole GOPs are copied (the segment muxer splits exactly at a key frame) into
   an MPEG-TS segment whose key frames carry their own parameter sets; the frames before the first and
   after the last whole GOP are decoded and re-encoded into MPEG-TS segments by an encoder matching the
   source (codec, profile, level, pixel format, colour; size, sample aspect ratio and timestamps pass
   through unchanged), without B-frames; the sound's packets shown in ``[start, end)`` are copied
   (re-encoded to the sample when the container does not take the codec, or it is lossless).
4. **One final mux** joins the segments (MPEG-TS files joined byte by byte: the timestamps simply go on)
   with the sound into the output's container, ``+faststart`` for MP4/MOV.

Decode times: the copied GOPs decode ``delay`` frames before they are shown (B-frames); the re-encoded
head has none, so its decode times are moved back by that delay (``setts``) to stay below the copied
GOPs'. The tail starts at a key frame shown after every copied frame: its decode times are above theirs.

Full re-encodes of the range (mode "reencode", still frame- and sample-accurate, the source read once):
- a source codec other than H.264 and HEVC, or an output container that cannot hold it: FFmpeg's own
  accurate seek straight from the source, the encoders the container's (:data:`CONTAINERS`);
- what the local copy shows cannot be matched (interlaced, a profile or pixel format the encoders lack):
  from the local copy, the container's encoders;
- no whole clean GOP in the range (a range inside one GOP; open GOPs, such as HEVC's CRA with leading
  pictures or x264's ``--open-gop``): from the local copy, the matching encoder.
Sound-only outputs (or sources) copy the sound's packets, or re-encode them as above.

The output holds the first picture (not cover art) and the first sound; the picture's rotation (an MP4's
display matrix) is kept in MP4/MOV outputs; the source's tags are not. The ``out_time`` of the steps'
progress reports is on their own timeline (BASE plus source or output seconds); only the final mux's
counts the output's seconds from 0.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from mpr_common.events import MediaInfo
from mpr_common.mediainfo import INPUT_FORMATS, NETWORK_PROTOCOLS, child_setup, redact

from .ffmpeg_runner import FfmpegError, Runner

"""Runs one FFmpeg argv under the job's limits, cancel signal and progress; returns its stderr lines."""

TrimMode = Literal["smart", "reencode", "copy"]

# Seconds added to every timestamp of the local copy and of the segments: decode times before the first
# frame (B-frames, the re-encoded head's shift) stay positive in NUT and MPEG-TS, which cannot hold
# negative ones. The final mux takes it off again.
BASE = 10
# Timestamps closer than this are the same instant (float seconds against exact time bases).
EPS = Fraction(1, 2000)
# A start closer than this to the source's end leaves nothing to cut.
MIN_SPAN = 0.001
# The read starts this much before the start: a demuxer may seek by decode time, which runs ahead of
# the presentation time of a key frame by the B-frame delay (a few frames).
READ_BEFORE = 0.5
# ... and ends this much after the end: frames shown before the end are all decoded from packets whose
# decode time is before the end; the margin covers demuxers that stop by an estimate.
READ_AFTER = 0.5
# When the key frame the read started from is shown after the start anyway, it starts this much earlier.
READ_RETRY_BEFORE = 10.0
PROBE_TIMEOUT = 120.0

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-progress", "pipe:1"]
# Inputs the job made itself in its work dir.
LOCAL = ["-protocol_whitelist", "file"]


class TrimRangeError(ValueError):
    """The range asks for nothing the source holds; the message is fit for a client."""


@dataclass(frozen=True)
class TrimResult:
    duration: float  # seconds of media written (the longer of picture and sound)
    # The picture's (the sound's for sound-only outputs): "smart", the edges re-encoded and the whole
    # GOPs copied; "copy", nothing re-encoded; "reencode", all of it.
    mode: TrimMode


# --- the range ----------------------------------------------------------------------------------------


def check_range(info: MediaInfo, start: float | None, end: float | None) -> tuple[float, float]:
    """``(start, end)`` in seconds from the source's start, ``end`` clipped to the source's duration
    (``math.inf`` when neither is known). Raises :class:`TrimRangeError` for a range outside the source."""
    s = 0.0 if start is None else float(start)
    e = math.inf if end is None else float(end)
    if not (math.isfinite(s) and s >= 0) or math.isnan(e):
        raise TrimRangeError("start and end must be numbers of seconds, start at least 0")
    if e <= s:
        raise TrimRangeError(f"end {e:.3f}s must be after start {s:.3f}s")
    duration = info.duration
    if duration is not None:
        if s + MIN_SPAN > duration:
            raise TrimRangeError(f"start {s:.3f}s is beyond the source's end ({duration:.3f}s)")
        e = min(e, duration)
    return s, e


# --- containers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Container:
    """What an output file type holds, and the encoders a re-encode into it uses."""

    muxer: str
    video_copy: frozenset[str]  # source video codecs a smart cut keeps (empty: always re-encode)
    audio_copy: frozenset[str]  # source audio codecs copied as they are
    video_encoder: list[str] | None  # None: an audio-only container
    audio_encoder: list[str]
    faststart: bool = False
    rotation: bool = False  # keeps a display matrix (set from the "rotate" tag)
    passthrough: bool = True  # timestamps as they are (variable frame rate); False: constant rate


_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-profile:v", "high"]
_VP9 = ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-pix_fmt", "yuv420p"]
_VP9 += ["-deadline", "good", "-cpu-used", "5", "-row-mt", "1"]
_AAC = ["-c:a", "aac", "-b:a", "160k"]
_OPUS = ["-c:a", "libopus", "-b:a", "128k"]
_MP3 = ["-c:a", "libmp3lame", "-q:a", "2"]
_H26X = frozenset({"h264", "hevc"})
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})
_PCM = frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_s16be", "pcm_s24be"})

CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", _H26X, _MP4_AUDIO, _X264, _AAC, faststart=True, rotation=True),
    ".m4v": Container("mp4", _H26X, _MP4_AUDIO, _X264, _AAC, faststart=True, rotation=True),
    ".mov": Container("mov", _H26X, _MP4_AUDIO | _PCM, _X264, _AAC, faststart=True, rotation=True),
    ".mkv": Container(
        "matroska", _H26X, _MP4_AUDIO | _PCM | {"opus", "vorbis", "flac", "mp2", "dts"}, _X264, _AAC
    ),
    ".ts": Container("mpegts", _H26X, frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus"}), _X264, _AAC),
    # WebM holds VP8/VP9/AV1 only: an H.264 or HEVC source is re-encoded to VP9.
    ".webm": Container("webm", frozenset(), frozenset({"opus", "vorbis"}), _VP9, _OPUS),
    # Containers without the decode/presentation times B-frames need (or with parameter sets in the
    # header only): the range is re-encoded, to their usual codecs.
    ".avi": Container("avi", frozenset(), frozenset({"mp3"}), _X264, _MP3, passthrough=False),
    ".flv": Container("flv", frozenset(), frozenset({"aac", "mp3"}), _X264, _AAC, passthrough=False),
    ".wmv": Container(
        "asf",
        frozenset(),
        frozenset({"wmav2"}),
        ["-c:v", "wmv2", "-q:v", "3"],
        ["-c:a", "wmav2", "-b:a", "160k"],
        passthrough=False,
    ),
    # Sound only: the picture is left out.
    ".mp3": Container("mp3", frozenset(), frozenset({"mp3"}), None, _MP3),
    ".m4a": Container("ipod", frozenset(), frozenset({"aac", "alac"}), None, _AAC, faststart=True),
    ".aac": Container("adts", frozenset(), frozenset({"aac"}), None, _AAC),
    ".wav": Container("wav", frozenset(), _PCM, None, ["-c:a", "pcm_s16le"]),
    ".flac": Container("flac", frozenset(), frozenset({"flac"}), None, ["-c:a", "flac"]),
    ".ogg": Container(
        "ogg", frozenset(), frozenset({"vorbis", "opus", "flac"}), None, ["-c:a", "libvorbis", "-q:a", "5"]
    ),
}


# Lossless sound is re-encoded to the same codec rather than copied: nothing is lost, and its packets
# (4096 samples, about 0.1 s) would make the cut coarser than a frame.
_LOSSLESS = _PCM | {"flac", "alac"}


def sound_encoder(codec: str | None, container: Container) -> list[str] | None:
    """How the sound goes into ``container``: None, its packets are copied; else the encoder options."""
    if codec in container.audio_copy:
        return ["-c:a", str(codec)] if codec in _LOSSLESS else None
    return container.audio_encoder


def container_for(output: Path) -> Container:
    try:
        return CONTAINERS[output.suffix.lower()]
    except KeyError:
        raise ValueError(f"a trim cannot write {output.suffix or 'files without an extension'}") from None


# --- the encoder that matches the source --------------------------------------------------------------

_X264_PROFILES = {
    "Baseline": "baseline",
    "Constrained Baseline": "baseline",
    "Main": "main",
    "High": "high",
    "Progressive High": "high",
    "Constrained High": "high",
    "High 10": "high10",
    "High 4:2:2": "high422",
    "High 4:4:4 Predictive": "high444",
}
_X264_PIX_FMTS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le", "yuv422p10le"}
    | {"yuv444p10le", "gray", "gray10le"}
)
# None: let x265 derive the profile from the pixel format (the range extensions).
_X265_PROFILES: dict[str, str | None] = {"Main": "main", "Main 10": "main10", "Rext": None}
_X265_PIX_FMTS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le", "yuv422p10le"}
    | {"yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le", "gray", "gray10le", "gray12le"}
)
_COLOUR_OPTIONS = {
    "color_primaries": "-color_primaries",
    "color_transfer": "-color_trc",
    "color_space": "-colorspace",
    "color_range": "-color_range",
}
# Edges are a second or two of picture beside copied ones: high quality, fast.
EDGE_X264 = ["-preset", "veryfast", "-crf", "18"]
EDGE_X265 = ["-preset", "veryfast", "-crf", "20"]


def matching_encoder(stream: Mapping[str, Any]) -> list[str] | None:
    """Encoder options that make frames a decoder can take in the middle of ``stream`` (ffprobe's view
    of the source's video): the same codec, profile, level and pixel format, no B-frames (see the
    module's note on decode times). None when no encoder here can match it."""
    codec = stream.get("codec_name")
    pix_fmt = stream.get("pix_fmt")
    profile = stream.get("profile")
    if stream.get("field_order") not in (None, "", "unknown", "progressive"):
        return None  # interlaced: the edges would need field coding matched too
    try:
        level = int(stream.get("level") or 0)
    except (TypeError, ValueError):
        level = 0
    args: list[str]
    if codec == "h264":
        x264_profile = _X264_PROFILES.get(profile or "")
        if x264_profile is None or pix_fmt not in _X264_PIX_FMTS:
            return None
        args = ["-c:v", "libx264", *EDGE_X264, "-bf", "0", "-profile:v", x264_profile, "-pix_fmt", pix_fmt]
        if level >= 10:  # ffprobe: 31 is level 3.1 (9, level 1b, is left to x264)
            args += ["-level:v", f"{level // 10}.{level % 10}"]
    elif codec == "hevc":
        if profile not in _X265_PROFILES or pix_fmt not in _X265_PIX_FMTS:
            return None
        args = ["-c:v", "libx265", *EDGE_X265, "-pix_fmt", pix_fmt]
        x265_profile = _X265_PROFILES[profile]
        if x265_profile is not None:
            args += ["-profile:v", x265_profile]
        params = ["log-level=error", "bframes=0"]
        if level > 0:  # ffprobe: general_level_idc, 30 times the level (93 is level 3.1)
            params.append(f"level-idc={level / 30:g}")
        args += ["-x265-params", ":".join(params)]
    else:
        return None
    for key, option in _COLOUR_OPTIONS.items():
        value = stream.get(key)
        if value and value not in ("unknown", "unspecified", "reserved"):
            args += [option, str(value)]
    return args


# --- the plan (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoPacket:
    pts: Fraction  # seconds
    dts: Fraction | None
    key: bool


@dataclass(frozen=True, slots=True)
class CutPlan:
    """Which frames the output holds and how each part is made. Times are the local copy's seconds."""

    frames: tuple[Fraction, ...]  # presentation times of the output's frames, in order
    frame_end: Fraction  # when the last frame's display ends
    head: tuple[Fraction, ...] = ()  # frames re-encoded before the copied GOPs
    tail: tuple[Fraction, ...] = ()  # ... and after them
    copy_from: int = 0  # decode-order index of the first copied packet (a clean key frame)
    copy_count: int = 0  # packets copied (0: nothing is)
    tail_key: Fraction | None = None  # the clean key frame the tail is decoded from
    head_dts_shift: Fraction = Fraction(0)  # how far the head's decode times move back

    @property
    def mode(self) -> TrimMode:
        if not self.copy_count:
            return "reencode"
        return "smart" if self.head or self.tail else "copy"


def _frame_end(frames: Sequence[Fraction], i: int) -> Fraction:
    if i + 1 < len(frames):
        return frames[i + 1]
    gaps = sorted(b - a for a, b in zip(frames, frames[1:], strict=False))
    return frames[i] + (gaps[len(gaps) // 2] if gaps else Fraction(1, 25))


def plan_cut(
    packets: Sequence[VideoPacket], start: Fraction, end: Fraction, name: str = "", *, copy: bool = True
) -> CutPlan:
    """The plan for the frames shown in ``[start, end)`` of ``packets`` (decode order, as read); for a
    range shorter than a frame, the frame on screen at ``start``.

    The copied part runs from the first clean key frame at or after the first frame kept to the last
    clean key frame at or before the first frame not kept (the end of the stream when every frame after
    the start is kept); it is left out when it would be empty or its packets are not exactly the frames
    it spans. A clean key frame: no packet after it in decode order is shown before it (a closed GOP)."""
    everything = sorted({p.pts for p in packets})
    frames = tuple(t for t in everything if start - EPS <= t < end - EPS)
    if not frames:  # a range shorter than a frame: the frame on screen at the start
        shown = [i for i, t in enumerate(everything) if t < start and _frame_end(everything, i) > start]
        if not shown:
            raise TrimRangeError(f"{_range(start, end, name)} holds no video frame")
        frames = (everything[shown[-1]],)
    first, last = frames[0], frames[-1]
    frame_end = _frame_end(everything, everything.index(last))
    after = next((t for t in everything if t > last), None)  # the first frame not kept, if any

    # A key frame is clean when no packet after it in decode order is shown before it.
    clean: list[int] = []
    shown_after: Fraction | None = None  # the earliest presentation time after packet i
    for i in range(len(packets) - 1, -1, -1):
        p = packets[i]
        if p.key and (shown_after is None or shown_after > p.pts):
            clean.append(i)
        shown_after = p.pts if shown_after is None else min(shown_after, p.pts)
    clean.reverse()  # decode order, which for clean key frames is also presentation order

    a = next((i for i in clean if packets[i].pts >= first), None)
    if after is None:
        b = len(packets)
    else:
        b = max((i for i in clean if packets[i].pts <= after), default=-1)
    whole = CutPlan(frames=frames, frame_end=frame_end, head=frames)
    if not copy or a is None or b <= a:
        return whole
    upper = packets[b].pts if b < len(packets) else None
    copied = sorted(p.pts for p in packets[a:b])
    spanned = [t for t in everything if t >= packets[a].pts and (upper is None or t < upper)]
    if copied != spanned:
        return whole  # frames decoded in another GOP than the one they are shown in: not a clean cut
    delays = [p.pts - p.dts for p in packets[a:b] if p.dts is not None]
    return CutPlan(
        frames=frames,
        frame_end=frame_end,
        head=tuple(t for t in frames if t < packets[a].pts),
        tail=tuple(t for t in frames if upper is not None and t >= upper),
        copy_from=a,
        copy_count=b - a,
        tail_key=upper,
        head_dts_shift=max(delays, default=Fraction(0)),
    )


# --- ffprobe of the local copy ------------------------------------------------------------------------


@dataclass(slots=True)
class LocalCopy:
    video: dict[str, Any] | None = None  # ffprobe's stream
    audio: dict[str, Any] | None = None
    packets: list[VideoPacket] = field(default_factory=list)
    audio_pts: list[Fraction] = field(default_factory=list)  # presentation times of the sound's packets
    untimed: bool = False  # a picture packet without a timestamp: packet counts cannot place a cut


def _fraction(value: str) -> Fraction:
    num, _, den = value.partition("/")
    return Fraction(int(num), int(den or 1))


def _compact_fields(line: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in line.strip().split("|")[1:] if "=" in part)


def parse_local_copy(text: str) -> LocalCopy:
    """ffprobe's ``compact`` listing of the local copy's streams and packets (``stream|key=value|...``,
    ``packet|...``): the first picture and sound streams, the picture's packets in decode order."""
    copy = LocalCopy()
    lines = text.splitlines()
    bases: dict[int, Fraction] = {}
    for line in lines:
        if not line.startswith("stream|"):
            continue
        stream: dict[str, Any] = _compact_fields(line)
        kind = stream.get("codec_type")
        if kind == "video" and copy.video is None:
            copy.video = stream
        elif kind == "audio" and copy.audio is None:
            copy.audio = stream
        else:
            continue
        bases[int(stream["index"])] = _fraction(stream["time_base"])
    video_index = int(copy.video["index"]) if copy.video else None
    for line in lines:
        if not line.startswith("packet|"):
            continue
        fields = _compact_fields(line)
        try:
            index = int(fields.get("stream_index", ""))
        except ValueError:
            continue
        tb = bases.get(index)
        if tb is None:
            continue
        try:
            pts = int(fields.get("pts", ""))
        except ValueError:
            copy.untimed = copy.untimed or index == video_index
            continue
        if index == video_index:
            dts_text = fields.get("dts", "N/A")
            dts = int(dts_text) * tb if dts_text.lstrip("-").isdigit() else None
            copy.packets.append(VideoPacket(pts * tb, dts, "K" in fields.get("flags", "")))
        else:
            copy.audio_pts.append(pts * tb)
    return copy


async def _capture(args: list[str], timeout: float) -> str:
    """Run ffprobe on a file the job made; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=child_setup(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:  # timed out or cancelled: ffprobe stops too
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        tail = redact(err.decode("utf-8", "replace")).strip()
        raise FfmpegError(f"ffprobe of the range read exited with {proc.returncode}", proc.returncode, tail)
    return out.decode("utf-8", "replace")


def parse_rotation(data: Mapping[str, Any]) -> int:
    """The "rotate" tag (0-359) for ffprobe's JSON of a stream's side data (``rotation``: -90 is 270)."""
    for stream in data.get("streams") or []:
        for side in stream.get("side_data_list") or []:
            if "rotation" in side:
                try:
                    return round(float(side["rotation"])) % 360
                except (TypeError, ValueError):
                    return 0
    return 0


_STREAM_FIELDS = (
    "index,codec_type,codec_name,profile,level,pix_fmt,width,height,sample_aspect_ratio,field_order,"
    "color_range,color_space,color_transfer,color_primaries,time_base,sample_rate,channels"
)


async def probe_local_copy(path: Path) -> LocalCopy:
    """What the local copy holds: one ffprobe for its streams and packets."""
    entries = f"stream={_STREAM_FIELDS}:packet=stream_index,pts,dts,flags"
    args = ["ffprobe", "-v", "error", "-hide_banner", *LOCAL, "-format_whitelist", "nut", "-f", "nut"]
    return parse_local_copy(
        await _capture([*args, "-show_entries", entries, "-of", "compact", "-i", str(path)], PROBE_TIMEOUT)
    )


async def probe_rotation(local: Path) -> int:
    """The rotation of the source's picture, from the MOV the read wrote beside the local copy (0 when
    that cannot be read: a tag is not worth failing the job for)."""
    args = ["ffprobe", "-v", "error", "-hide_banner", *LOCAL, "-format_whitelist", INPUT_FORMATS]
    args += ["-select_streams", "v:0", "-show_entries", "stream_side_data=rotation", "-of", "json"]
    try:
        text = await _capture([*args, "-i", str(rotation_file(local))], PROBE_TIMEOUT)
        return parse_rotation(json.loads(text or "{}"))
    except (FfmpegError, ValueError):
        return 0


# --- FFmpeg argument lists ----------------------------------------------------------------------------


def _secs(t: Fraction | float) -> str:
    """Seconds for FFmpeg, rounded to the microsecond (its own resolution)."""
    us = round(Fraction(t) * 1_000_000)
    sign = "-" if us < 0 else ""
    whole, frac = divmod(abs(us), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


# Codecs whose display matrix (a phone's rotation) a one-frame MOV copy keeps: NUT drops it.
_ROTATION_CODECS = frozenset({"h264", "hevc", "mpeg4", "av1"})


def read_range_args(
    url: str,
    protocols: str,
    first: float,
    last: float | None,
    picture: bool,
    local: Path,
    max_bytes: int | None,
    rotation: bool = False,
) -> list[str]:
    """The one read of the source: a stream copy of ``[first, last]`` (seconds from the source's start;
    None: to its end) into ``local``, timestamps = the source's + BASE; ``picture``: the first picture
    stream too (not only the first sound's); ``rotation``: the first frame also into
    :func:`rotation_file` (a MOV keeps the source's display matrix, NUT does not)."""
    args = [*FFMPEG, "-protocol_whitelist", protocols, "-format_whitelist", INPUT_FORMATS]
    args += ["-rw_timeout", "30000000"]
    if first > 0:
        args += ["-ss", _secs(first)]  # input seeking: HTTP range requests, from the key frame before
    args += ["-i", url]
    duration = [] if last is None else ["-t", _secs(last - first)]
    # the first picture that is not cover art, the first sound: what a trim keeps
    maps = ["-map", "0:V:0?"] if picture else []
    args += [*duration, *maps, "-map", "0:a:0?", "-c", "copy", "-output_ts_offset", _secs(first + BASE)]
    if max_bytes:
        args += ["-fs", str(max_bytes)]
    args += ["-f", "nut", str(local)]
    if rotation:
        args += ["-map", "0:V:0", "-c", "copy", "-frames:v", "1", "-f", "mov", str(rotation_file(local))]
    return args


def rotation_file(local: Path) -> Path:
    return local.with_name(local.stem + "-rotation.mov")


def _local_input(local: Path, offset: Fraction, seek: Fraction | None = None) -> list[str]:
    """The local copy as an input, its timestamps moved by ``offset``; ``seek``: start decoding at the
    key frame at or before that time (its own timestamps)."""
    args = ["-copyts", *LOCAL, "-format_whitelist", "nut"]
    if seek is not None:
        args += ["-seek_timestamp", "1", "-noaccurate_seek", "-ss", _secs(seek)]
    return [*args, "-itsoffset", _secs(offset), "-f", "nut", "-i", str(local)]


_TS_OUT = ["-muxdelay", "0", "-muxpreload", "0"]  # MPEG-TS keeps the timestamps it is given
SOUND = "sound.nut"


def _window(frames: Sequence[Fraction], everything: Sequence[Fraction]) -> tuple[Fraction, Fraction]:
    """Bounds halfway between the frames kept and their neighbours (robust to rounding either way)."""
    i = everything.index(frames[0])
    j = everything.index(frames[-1])
    lo = (everything[i - 1] + frames[0]) / 2 if i > 0 else frames[0] - EPS
    hi = (frames[-1] + everything[j + 1]) / 2 if j + 1 < len(everything) else frames[-1] + EPS
    return lo, hi


def encode_segment_args(
    local: Path,
    offset: Fraction,
    frames: Sequence[Fraction],
    everything: Sequence[Fraction],
    encoder: list[str],
    segment: Path,
    *,
    seek: Fraction | None = None,
    dts_shift: Fraction = Fraction(0),
) -> list[str]:
    """Re-encode ``frames`` (local times) into an MPEG-TS segment, times moved by ``offset``."""
    lo, hi = _window(frames, everything)
    args = [*FFMPEG, *_local_input(local, offset, seek), "-map", "0:v:0", "-an", "-sn", "-dn"]
    args += ["-vf", f"trim=start={_secs(lo + offset)}:end={_secs(hi + offset)}"]
    args += ["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000", *encoder]
    if dts_shift:
        args += ["-bsf:v", f"setts=dts=DTS-{_secs(dts_shift)}/TB"]
    return [*args, *_TS_OUT, "-f", "mpegts", str(segment)]


def _annexb(codec: str) -> str:
    """Bitstream filters that make copied packets carry their parameter sets before every key frame."""
    return f"{'hevc' if codec == 'hevc' else 'h264'}_mp4toannexb,dump_extra=freq=keyframe"


COPIED = "copy-1.ts"  # the whole GOPs (the segment muxer's second file; its first: the GOPs before)


def copy_args(
    local: Path,
    offset: Fraction,
    plan: CutPlan,
    packets: Sequence[VideoPacket],
    codec: str,
    audio: tuple[Fraction, Fraction, list[str] | None] | None,
    work_dir: Path,
) -> list[str]:
    """One pass over the local copy: the whole GOPs of ``plan`` into the MPEG-TS segment
    ``work_dir/COPIED`` (the segment muxer splits at the first copied key frame: exact; the count of
    packets ends it), and the sound of ``audio`` = (start, end, encoder; None: copy) into
    ``work_dir/sound.nut``. Times are local ones; the outputs' are moved by ``offset``."""
    args = [*FFMPEG, *_local_input(local, offset)]
    if plan.copy_count:
        args += ["-map", "0:v:0", "-c:v", "copy", "-bsf:v", _annexb(codec)]
        args += ["-frames:v", str(plan.copy_from + plan.copy_count), *_TS_OUT]
        if plan.copy_from:
            ka = packets[plan.copy_from].pts
            before = max((p.pts for p in packets if p.pts < ka), default=ka - EPS)
            args += ["-f", "segment", "-segment_format", "mpegts", "-segment_start_number", "0"]
            args += ["-segment_times", _secs((before + ka) / 2 + offset), str(work_dir / "copy-%d.ts")]
        else:
            args += ["-f", "mpegts", str(work_dir / COPIED)]
    if audio is not None:
        a_start, a_end, encoder = audio
        args += ["-map", "0:a:0", "-vn", "-sn", "-dn"]
        if encoder is None:
            # packets shown in [start, end); -ss moves the output's times back, -output_ts_offset undoes it
            a_from = a_start - EPS + offset
            args += ["-c:a", "copy", "-ss", _secs(a_from), "-to", _secs(a_end - EPS + offset)]
            args += ["-output_ts_offset", _secs(a_from)]
        else:
            window = f"atrim=start={_secs(a_start + offset)}:end={_secs(a_end + offset)}"
            args += ["-af", window, *encoder]
        args += ["-f", "nut", str(work_dir / SOUND)]
    return args


# NAL unit type of an access unit delimiter, which the MPEG-TS muxer adds to every packet.
_AUD = {"h264": 9, "hevc": 35}


def final_mux_args(
    segments: Sequence[Path],
    audio: Path | None,
    codec: str,
    container: Container,
    output: Path,
    max_bytes: int | None,
    rotation: int = 0,
) -> list[str]:
    """Join the segments (MPEG-TS: byte by byte) and the sound into the output, times back by BASE.
    Outside MPEG-TS the delimiters the segments' muxer added go: the copied packets are then the
    source's, byte for byte (key frames aside, which carry their parameter sets)."""
    args = [*FFMPEG, "-copyts"]
    args += ["-protocol_whitelist", "file,concat", "-format_whitelist", "mpegts", "-f", "mpegts"]
    args += ["-i", "concat:" + "|".join(str(s) for s in segments)]
    maps = ["-map", "0:v:0"]
    if audio is not None:
        args += [*LOCAL, "-format_whitelist", "nut", "-f", "nut", "-i", str(audio)]
        maps += ["-map", "1:a:0"]
    args += [*maps, "-c", "copy", "-output_ts_offset", str(-BASE)]
    if container.muxer != "mpegts" and codec in _AUD:
        args += ["-bsf:v", f"filter_units=remove_types={_AUD[codec]}"]
    return [*args, *_output_tail(container, max_bytes, rotation), str(output)]


def _output_tail(container: Container, max_bytes: int | None, rotation: int = 0) -> list[str]:
    # Picture and sound are what a trim keeps: the source's tags are left out, whichever way the
    # output was made. The rotation is kept, as the tag MP4/MOV muxers turn into a display matrix.
    args = ["-map_metadata", "-1"]
    if rotation and container.rotation:
        args += ["-metadata:s:v:0", f"rotate={rotation}"]
    if max_bytes:
        args += ["-fs", str(max_bytes)]
    if container.faststart:
        args += ["-movflags", "+faststart"]
    return [*args, "-f", container.muxer]


def reencode_args(
    local: Path,
    offset: Fraction,
    video: tuple[Sequence[Fraction], Sequence[Fraction]] | None,
    audio: tuple[Fraction, Fraction, list[str]] | None,
    container: Container,
    output: Path,
    max_bytes: int | None,
    rotation: int = 0,
) -> list[str]:
    """The range re-encoded: ``video`` = (frames kept, every frame) with the container's encoder,
    ``audio`` = (start, end, encoder); local times; the output's times start at ``offset`` - BASE."""
    args = [*FFMPEG, *_local_input(local, offset)]
    back = f"{_secs(Fraction(BASE))}/TB"
    if video is not None:
        assert container.video_encoder is not None
        lo, hi = _window(*video)
        args += [
            "-map",
            "0:v:0",
            "-vf",
            f"trim=start={_secs(lo + offset)}:end={_secs(hi + offset)},setpts=PTS-{back}",
        ]
        args += [*_frame_times(container), *container.video_encoder]
    if audio is not None:
        a_start, a_end, encoder = audio
        window = f"atrim=start={_secs(a_start + offset)}:end={_secs(a_end + offset)},asetpts=PTS-{back}"
        args += ["-map", "0:a:0", "-af", window, *encoder]
    return [*args, "-sn", "-dn", *_output_tail(container, max_bytes, rotation), str(output)]


def _frame_times(container: Container) -> list[str]:
    """Frames keep their timestamps (variable rates too), at a resolution that rounds none of them."""
    return ["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000"] if container.passthrough else []


def direct_reencode_args(
    url: str,
    protocols: str,
    start: float,
    end: float,
    container: Container,
    output: Path,
    max_bytes: int | None,
) -> list[str]:
    """The range re-encoded straight from the source (one read): FFmpeg's accurate seek decodes from
    the key frame before ``start`` and drops what comes before it; ``-t`` ends the picture at the end
    and cuts the sound there to the sample."""
    assert container.video_encoder is not None
    args = [*FFMPEG, "-protocol_whitelist", protocols, "-format_whitelist", INPUT_FORMATS]
    args += ["-rw_timeout", "30000000"]
    if start > 0:
        args += ["-ss", _secs(start)]
    args += ["-i", url]
    if math.isfinite(end):
        args += ["-t", _secs(end - start)]
    args += ["-map", "0:V:0", "-map", "0:a:0?", *_frame_times(container), *container.video_encoder]
    args += [*container.audio_encoder, "-sn", "-dn"]
    return [*args, *_output_tail(container, max_bytes), str(output)]


def audio_copy_args(
    local: Path, start: Fraction, end: Fraction, container: Container, output: Path, max_bytes: int | None
) -> list[str]:
    """Sound only, copied: packets shown in ``[start, end)`` (local times); output times from 0."""
    args = [*FFMPEG, *_local_input(local, Fraction(0)), "-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "copy"]
    args += ["-ss", _secs(start - EPS), "-to", _secs(end - EPS)]
    return [*args, *_output_tail(container, max_bytes), str(output)]


# --- the job --------------------------------------------------------------------------------------------


def _floor_us(t: Fraction) -> Fraction:
    return Fraction(math.floor(t * 1_000_000), 1_000_000)


async def _read_range(
    url: str,
    info: MediaInfo,
    start: float,
    end: float,
    local: Path,
    run: Runner,
    protocols: str,
    picture: bool,
    rotation: bool,
    max_bytes: int | None,
) -> LocalCopy:
    """Read the range once; again from earlier in the rare case the first key frame read is shown after
    the start (a demuxer that seeks by decode time further back than READ_BEFORE covers)."""
    to_the_end = not math.isfinite(end) or (info.duration is not None and end >= info.duration)
    last = None if to_the_end else end + READ_AFTER
    first = max(0.0, start - READ_BEFORE)
    while True:
        await run(read_range_args(url, protocols, first, last, picture, local, max_bytes, rotation))
        copy = await probe_local_copy(local)
        keys = [p.pts for p in copy.packets if p.key]
        starts = keys[:1] if copy.video is not None else sorted(copy.audio_pts)[:1]
        if first == 0.0 or not starts or starts[0] <= Fraction(start) + BASE + EPS:
            return copy
        first = first - READ_RETRY_BEFORE if first > READ_RETRY_BEFORE else 0.0


async def _upright() -> int:
    return 0


async def _all(run: Runner, steps: Sequence[list[str]]) -> None:
    """Run independent steps at once; the first failure stops the others and is what is raised."""
    tasks = [asyncio.ensure_future(run(args)) for args in steps]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def smart_trim(
    url: str,
    info: MediaInfo,
    start: float | None,
    end: float | None,
    work_dir: Path,
    output: Path,
    run: Runner,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    name: str = "",
    max_bytes: int | None = None,
) -> TrimResult:
    """Write the frames of ``url`` shown in ``[start, end)`` (seconds from the source's start) to
    ``output``, whose suffix picks the container (:data:`CONTAINERS`), keeping the source's codec where
    it can (see the module's doc).

    ``work_dir`` holds the scratch files (about the size of the range); ``name`` (the object's key)
    names the source in messages; ``max_bytes`` bounds the local copy and the output (``-fs``).
    Raises :class:`TrimRangeError` for a range the source does not hold, ``ValueError`` for an output
    type a trim cannot write, ``FfmpegError`` (from ``run``) when FFmpeg fails."""
    container = container_for(output)
    s, e = check_range(info, start, end)
    if "|" in str(work_dir):
        raise ValueError("the work dir's path holds '|', the concat protocol's separator")
    video_codec = info.video_codec if container.video_encoder is not None else None
    if video_codec is not None and video_codec not in container.video_copy:
        # No codec to keep (or the container cannot hold it): nothing is copied, so nothing needs a
        # local copy either; FFmpeg's own accurate seek reads the range once.
        await run(direct_reencode_args(url, protocols, s, e, container, output, max_bytes))
        last = e if math.isfinite(e) else (info.duration or s)
        return TrimResult(round(last - s, 6), "reencode")

    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    local = work_dir / "range.nut"
    turned = container.rotation and video_codec in _ROTATION_CODECS
    picture = video_codec is not None
    copy = await _read_range(url, info, s, e, local, run, protocols, picture, turned, max_bytes)
    start_t = Fraction(s) + BASE
    end_t = Fraction(e) + BASE if math.isfinite(e) else Fraction(10**9)
    audio_pts = sorted(t for t in copy.audio_pts if start_t - EPS <= t < end_t - EPS)
    if copy.video is None or not copy.packets or container.video_encoder is None:
        return await _trim_sound(
            copy, audio_pts, start_t, end_t, local, container, output, run, name, max_bytes
        )
    # Only the last FFmpeg step needs the rotation: its probe runs beside the others.
    rotation = asyncio.ensure_future(probe_rotation(local) if turned else _upright())
    try:
        return await _trim_video(
            copy, audio_pts, start_t, end_t, work_dir, container, output, run, name, max_bytes, rotation
        )
    finally:
        rotation.cancel()


async def _trim_video(
    copy: LocalCopy,
    audio_pts: Sequence[Fraction],
    start_t: Fraction,
    end_t: Fraction,
    work_dir: Path,
    container: Container,
    output: Path,
    run: Runner,
    name: str,
    max_bytes: int | None,
    rotation: Awaitable[int],
) -> TrimResult:
    """Picture (and sound) from the local copy: the smart cut, or a re-encode of the range."""
    assert copy.video is not None
    local = work_dir / "range.nut"
    plan = plan_cut(copy.packets, start_t, end_t, name, copy=not copy.untimed)
    everything = sorted({p.pts for p in copy.packets})
    codec = str(copy.video.get("codec_name"))
    encoder = matching_encoder(copy.video) if codec in container.video_copy else None
    sound_options = sound_encoder((copy.audio or {}).get("codec_name"), container)
    if encoder is None:
        # The output starts at the start: the sound sample-accurate, the first frame within one frame.
        t0 = min(start_t, plan.frames[0])
        offset = BASE - _floor_us(t0)
        reencoded = sound_options or container.audio_encoder
        sound = (start_t, min(end_t, plan.frame_end), reencoded) if audio_pts else None
        video = (plan.frames, everything)
        await run(reencode_args(local, offset, video, sound, container, output, max_bytes, await rotation))
        return TrimResult(round(float(plan.frame_end - t0), 6), "reencode")

    copy_sound = sound_options is None
    if not audio_pts:
        t0 = plan.frames[0]
    else:  # whichever comes first starts at 0; a re-encoded sound starts at the start
        t0 = min(plan.frames[0], audio_pts[0] if copy_sound else start_t)
    # Every time moves by offset: t0 lands on BASE (never below it: see _floor_us), which the final
    # mux takes off.
    offset = BASE - _floor_us(t0)
    audio = (start_t, end_t, sound_options) if audio_pts else None
    steps, segments = [], []
    if plan.head:
        segments.append(work_dir / "head.ts")
        shift = plan.head_dts_shift
        steps.append(
            encode_segment_args(local, offset, plan.head, everything, encoder, segments[-1], dts_shift=shift)
        )
    if plan.copy_count:
        segments.append(work_dir / COPIED)
    if plan.copy_count or audio is not None:
        steps.append(copy_args(local, offset, plan, copy.packets, codec, audio, work_dir))
    if plan.tail:
        segments.append(work_dir / "tail.ts")
        steps.append(
            encode_segment_args(
                local, offset, plan.tail, everything, encoder, segments[-1], seek=plan.tail_key
            )
        )
    await _all(run, steps)
    sound_file = work_dir / SOUND if audio is not None else None
    await run(final_mux_args(segments, sound_file, codec, container, output, max_bytes, await rotation))
    ends = [plan.frame_end]
    if audio_pts:
        ends.append(_sound_end(copy.audio_pts, audio_pts) if copy_sound else min(end_t, plan.frame_end))
    return TrimResult(round(float(max(ends) - t0), 6), plan.mode)


def _sound_end(every: Sequence[Fraction], kept: Sequence[Fraction]) -> Fraction:
    """When the last kept sound packet ends: the next packet's start, or one packet's length on."""
    ordered = sorted(every)
    i = ordered.index(kept[-1])
    if i + 1 < len(ordered):
        return ordered[i + 1]
    return ordered[i] + (ordered[i] - ordered[i - 1] if i > 0 else Fraction(0))


async def _trim_sound(
    copy: LocalCopy,
    audio_pts: Sequence[Fraction],
    start_t: Fraction,
    end_t: Fraction,
    local: Path,
    container: Container,
    output: Path,
    run: Runner,
    name: str,
    max_bytes: int | None,
) -> TrimResult:
    """Sound only (the source has no picture, or the container holds none): copied packet by packet
    when the container takes the codec, else re-encoded sample-accurately (see :func:`sound_encoder`)."""
    if copy.audio is None or not audio_pts:
        raise TrimRangeError(f"{_range(start_t, end_t, name)} holds no sound or picture")
    encoder = sound_encoder(copy.audio.get("codec_name"), container)
    if encoder is None:
        await run(audio_copy_args(local, start_t, end_t, container, output, max_bytes))
        return TrimResult(round(float(_sound_end(copy.audio_pts, audio_pts) - audio_pts[0]), 6), "copy")
    end_sound = min(end_t, _sound_end(copy.audio_pts, audio_pts))
    offset = BASE - _floor_us(start_t)
    await run(reencode_args(local, offset, None, (start_t, end_sound, encoder), container, output, max_bytes))
    return TrimResult(round(float(end_sound - start_t), 6), "reencode")


def _range(start_t: Fraction, end_t: Fraction, name: str) -> str:
    end = "its end" if end_t >= 10**9 else f"{float(end_t - BASE):.3f}s"
    return f"the range {float(start_t - BASE):.3f}s to {end} of {name or 'the source'}"


__all__ = [
    "BASE",
    "CONTAINERS",
    "Container",
    "CutPlan",
    "Runner",
    "TrimRangeError",
    "TrimResult",
    "VideoPacket",
    "check_range",
    "container_for",
    "matching_encoder",
    "plan_cut",
    "smart_trim",
]
