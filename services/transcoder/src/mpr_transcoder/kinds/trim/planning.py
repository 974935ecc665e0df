"""The pure part of a frame-accurate trim: the range asked for, the frames it keeps and the GOPs it copies
(:func:`plan_cut`), and ffprobe's listing of the local copy read back. Times are :class:`~fractions.Fraction`
seconds; no I/O."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from mpr_common.events import MediaInfo

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


class TrimRangeError(ValueError):
    """The range asks for nothing the source holds; the message is fit for a client."""


@dataclass(frozen=True)
class TrimResult:
    duration: float  # seconds of media written (the longer of picture and sound)
    # The picture's (the sound's for sound-only outputs): "smart", the edges re-encoded and the whole
    # GOPs copied; "copy", nothing re-encoded; "reencode", all of it.
    mode: TrimMode
    # The source's second the output's time 0 shows (the first frame or sound packet kept, within a
    # microsecond): what moves the source's subtitle cues onto the output's timeline.
    origin: float = 0.0


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
            raise TrimRangeError(f"{describe_range(start, end, name)} holds no video frame")
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


# --- ffprobe's listing of the local copy ----------------------------------------------------------


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


def _first_streams(copy: LocalCopy, lines: list[str]) -> dict[int, Fraction]:
    """Keep the first picture and sound streams in ``copy``; their time bases by stream index."""
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
    return bases


def _add_packet(
    copy: LocalCopy, fields: dict[str, str], bases: dict[int, Fraction], video_index: int | None
) -> None:
    """One packet of a kept stream into ``copy``: a picture's with its times and key flag, a sound's
    presentation time; a picture packet without a timestamp marks the copy untimed."""
    try:
        index = int(fields.get("stream_index", ""))
    except ValueError:
        return
    tb = bases.get(index)
    if tb is None:
        return
    is_video = index == video_index
    try:
        pts = int(fields.get("pts", ""))
    except ValueError:
        copy.untimed = copy.untimed or is_video
        return
    if is_video:
        dts_text = fields.get("dts", "N/A")
        dts = int(dts_text) * tb if dts_text.lstrip("-").isdigit() else None
        copy.packets.append(VideoPacket(pts * tb, dts, "K" in fields.get("flags", "")))
    else:
        copy.audio_pts.append(pts * tb)


def parse_local_copy(text: str) -> LocalCopy:
    """ffprobe's ``compact`` listing of the local copy's streams and packets (``stream|key=value|...``,
    ``packet|...``): the first picture and sound streams, the picture's packets in decode order."""
    copy = LocalCopy()
    lines = text.splitlines()
    bases = _first_streams(copy, lines)
    video_index = int(copy.video["index"]) if copy.video else None
    for line in lines:
        if line.startswith("packet|"):
            _add_packet(copy, _compact_fields(line), bases, video_index)
    return copy


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


STREAM_FIELDS = (
    "index,codec_type,codec_name,profile,level,pix_fmt,width,height,sample_aspect_ratio,field_order,"
    "color_range,color_space,color_transfer,color_primaries,time_base,sample_rate,channels"
)


# --- what the output holds ---------------------------------------------------------------------------


def floor_us(t: Fraction) -> Fraction:
    return Fraction(math.floor(t * 1_000_000), 1_000_000)


def sound_end(every: Sequence[Fraction], kept: Sequence[Fraction]) -> Fraction:
    """When the last kept sound packet ends: the next packet's start, or one packet's length on."""
    ordered = sorted(every)
    i = ordered.index(kept[-1])
    if i + 1 < len(ordered):
        return ordered[i + 1]
    return ordered[i] + (ordered[i] - ordered[i - 1] if i > 0 else Fraction(0))


def describe_range(start_t: Fraction, end_t: Fraction, name: str) -> str:
    end = "its end" if end_t >= 10**9 else f"{float(end_t - BASE):.3f}s"
    return f"the range {float(start_t - BASE):.3f}s to {end} of {name or 'the source'}"


# --- where a copying or re-encoding trim's output starts -------------------------------------------


_TIME_BASE = re.compile(r"#tb (\d+): (\d+)/(\d+)")
_NOPTS = -(2**63)  # what framecrc prints for a packet without a timestamp


def first_packet_time(framecrc: str, stream: int = 0) -> Fraction | None:
    """The presentation time (seconds) of ``stream``'s first packet in FFmpeg's framecrc listing
    (``#tb N: num/den`` headers, then ``stream, dts, pts, duration, size, crc`` lines); None when the
    listing has no such packet, or it has no timestamp."""
    bases: dict[int, Fraction] = {}
    for line in framecrc.splitlines():
        if m := _TIME_BASE.match(line):
            if int(m[3]):
                bases[int(m[1])] = Fraction(int(m[2]), int(m[3]))
            continue
        if line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            index, pts = int(fields[0]), int(fields[2])
        except (IndexError, ValueError):
            continue
        if index != stream:
            continue
        base = bases.get(index)
        return None if base is None or pts == _NOPTS else pts * base
    return None


def parse_cut_probe(text: str) -> tuple[float | None, float | None]:
    """ffprobe's JSON of a written trim (``cut_probe_args``): the presentation time of its first
    stream's first packet and its duration, in seconds (None for what it does not say)."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    packets = data.get("packets") or [{}]
    return _seconds(packets[0].get("pts_time")), _seconds((data.get("format") or {}).get("duration"))


def _seconds(value: object) -> float | None:
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) else None


def copy_origin(seek: float, listed: Fraction | None, written: float | None) -> float:
    """The source's second at a copying trim's time 0. Its command seeks to ``seek`` (the source's
    seconds: its packets then carry the source's times minus ``seek``) and copies from the key frame at
    or before it; its muxer then moves every timestamp by the same amount so that the first packet it
    writes (the lowest decode time of any stream: often neither the key frame nor ``seek``) is at 0.
    ``listed``: the first packet of the first stream as the command had it before the muxer (its second
    output, :func:`first_packet_time`); ``written``: the same packet in the output (ffprobe). Without
    either, ``seek`` (where a re-encoding trim starts), within a GOP of the truth."""
    if listed is None or written is None:
        return seek
    return round(seek + float(listed) - written, 6)
