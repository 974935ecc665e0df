"""WebVTT read and written in pure Python: the cues FFmpeg converted a subtitle track to, cut into the
segments of a package's HLS subtitle playlist, and the whole track in one file for DASH.

The text comes from a file anyone may have written (a sidecar, a stream's packets), so the reader is
lenient as the WebVTT parsing rules are (a block that is not a cue is skipped) and raises only
:class:`WebVTTError`, for a text that is not WebVTT at all. Times are kept in whole milliseconds, as
WebVTT writes them, so nothing drifts. What is written is always a cue list the reader reads back the
same: no cue identifiers, no payload line that is empty or holds ``-->``, settings only as the known
``name:value`` tokens.

HLS segments: each segment lists every cue that overlaps it, unchanged (a cue across a boundary is in
both; players drop the repeat), and starts with ``X-TIMESTAMP-MAP`` tying its times to the media's: the
package's CMAF segments start their timeline at 0 (their ``tfdt``), which is 0 in the 90 kHz MPEG-TS
clock that the map names (RFC 8216bis, section 3.5): ``MPEGTS:0,LOCAL:00:00:00.000``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SIGNATURE = "WEBVTT"
TIMESTAMP_MAP = "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000"
MAX_CUES = 100_000
_TIMESTAMP = re.compile(r"(?:(\d{2,9}):)?([0-5]\d):([0-5]\d)\.(\d{3})")
_TIMING = re.compile(r"[ \t]*(\S+)[ \t]+-->[ \t]+(\S+)(.*)")
_SETTING = re.compile(r"(?:vertical|line|position|size|align|region):[^\s:]+")


class WebVTTError(ValueError):
    """The text is not WebVTT (or holds more cues than a track may)."""


@dataclass(frozen=True, slots=True)
class Cue:
    start: int  # milliseconds
    end: int
    text: str  # the payload's lines, joined with "\n"; none empty, none holding "-->"
    settings: str = ""


def parse_timestamp(value: str) -> int | None:
    """A WebVTT timestamp (``01:02:03.004`` or ``02:03.004``) in milliseconds; None if it is not one."""
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        return None
    hours, minutes, seconds, millis = m.groups()
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def format_timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _blocks(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _cue(block: list[str]) -> Cue | None:
    """A block as a cue (its first line, or second after an identifier, its timing), None if it is not
    one; its payload ends at a line holding ``-->`` (what starts another cue, by the parsing rules, is
    left out here)."""
    timing = 0 if "-->" in block[0] else 1
    if timing >= len(block) or "-->" not in block[timing]:
        return None
    m = _TIMING.fullmatch(block[timing])
    if m is None:
        return None
    start, end = parse_timestamp(m.group(1)), parse_timestamp(m.group(2))
    if start is None or end is None or end <= start:
        return None
    payload: list[str] = []
    for line in block[timing + 1 :]:
        if "-->" in line:
            break
        payload.append(line)
    settings = " ".join(t for t in m.group(3).split() if _SETTING.fullmatch(t) and "-->" not in t)
    return Cue(start, end, "\n".join(payload), settings)


def parse(text: str) -> list[Cue]:
    """The cues of a WebVTT text, by start time (in the order given for equal starts). Comments, styles,
    regions and blocks that are no cue are skipped, as are cues that end before they start."""
    text = text.replace("\x00", "\ufffd").replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    lines = text.split("\n")
    first = lines[0]
    if not first.startswith(SIGNATURE) or first[len(SIGNATURE) : len(SIGNATURE) + 1] not in ("", " ", "\t"):
        raise WebVTTError("not a WebVTT file (it does not start with 'WEBVTT')")
    blocks = _blocks(lines[1:])
    if len(lines) > 1 and lines[1]:  # the header's lines run from the signature to the first blank line
        blocks = blocks[1:]
    cues: list[Cue] = []
    for block in blocks:
        if block[0].startswith("NOTE") and block[0][4:5] in ("", " ", "\t"):
            continue
        cue = _cue(block)
        if cue is None:
            continue
        cues.append(cue)
        if len(cues) > MAX_CUES:
            raise WebVTTError(f"more than {MAX_CUES} cues")
    cues.sort(key=lambda c: c.start)
    return cues


def serialize(cues: list[Cue], header: tuple[str, ...] = ()) -> str:
    """A WebVTT text of ``cues``, with ``header`` lines after the signature (``X-TIMESTAMP-MAP``)."""
    out = [SIGNATURE, *header, ""]
    for c in cues:
        timing = f"{format_timestamp(c.start)} --> {format_timestamp(c.end)}"
        out += [f"{timing} {c.settings}" if c.settings else timing, *([c.text] if c.text else []), ""]
    return "\n".join(out) + "\n"


def window(cues: list[Cue], start: int, end: int | None = None, *, origin: int | None = None) -> list[Cue]:
    """The cues shown in ``[start, end)`` (milliseconds; ``end`` None: no end), on the timeline of an
    output whose time 0 is ``origin`` (``start`` by default, never after it): a cue wholly outside is
    left out, one across an edge is cut to it. Order is kept and no cue gets longer."""
    zero = start if origin is None else origin
    if zero > start:
        raise ValueError("the output's time 0 comes after the start of what it shows")
    out = []
    for c in cues:
        lo, hi = max(c.start, start), c.end if end is None else min(c.end, end)
        if hi > lo:
            out.append(Cue(lo - zero, hi - zero, c.text, c.settings))
    return out


def boundaries(duration_ms: int, segment_ms: int) -> list[int]:
    """Segment boundaries every ``segment_ms`` from 0 to ``duration_ms`` (the last segment shorter)."""
    if segment_ms <= 0:
        raise ValueError("segments must have a length")
    n = max(1, math.ceil(duration_ms / segment_ms))
    return [min(i * segment_ms, duration_ms) for i in range(n)] + [max(duration_ms, 1)]


def segment(cues: list[Cue], bounds: list[int]) -> list[list[Cue]]:
    """The cues of each segment ``[bounds[i], bounds[i + 1])``: every cue that overlaps it, whole. A cue
    after the last boundary is in the last segment, one before the first in the first: none is lost."""
    n = len(bounds) - 1
    if n < 1:
        raise ValueError("at least one segment")
    out: list[list[Cue]] = [[] for _ in range(n)]
    for c in cues:
        placed = False
        for i in range(n):
            if c.start < bounds[i + 1] and c.end > bounds[i]:
                out[i].append(c)
                placed = True
        if not placed:
            out[0 if c.end <= bounds[0] else n - 1].append(c)
    return out


def merge(segments: list[list[Cue]], bounds: list[int]) -> list[Cue]:
    """The cues of ``segments`` once each (a cue repeated in a later segment starts before it), by start."""
    merged = [c for i, cues in enumerate(segments) for c in cues if i == 0 or c.start >= bounds[i]]
    return sorted(merged, key=lambda c: c.start)


def media_playlist(segment_files: list[str], bounds: list[int]) -> str:
    """The HLS media playlist (VOD) of a subtitle track's segments."""
    durations = [(bounds[i + 1] - bounds[i]) / 1000 for i in range(len(segment_files))]
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(max(durations, default=1.0)))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for name, d in zip(segment_files, durations, strict=True):
        lines += [f"#EXTINF:{d:.3f},", name]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"
