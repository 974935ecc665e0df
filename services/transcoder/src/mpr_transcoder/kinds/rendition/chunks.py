"""Chunked renditions: a video rung of a package encoded as several chunks of the source at once (each a
child job, on any transcoder), then stitched into the one rendition the manifests list.

- :func:`plan_chunks` cuts the title on segment boundaries: every chunk is a whole number of segments,
  and every rung is cut at the same times, so renditions stay aligned. A chunked transcode, joined into
  one file, has no segments to align: :func:`move_to_cuts` moves its boundaries to scene cuts near them.
- Each chunk runs ``cmaf.chunk_rendition_args``: exactly the source frames presented in ``[start, end)``
  (input seeking, decoded from the key frame before ``start``, frames before it dropped; ``-to`` keeps
  those before ``end``), timestamps from 0, segments numbered from the chunk's first one.
- :func:`finish_chunk` then moves the chunk's segments to their place in the title
  (``fragments.shift_fragments``: ``tfdt``, ``sidx`` and ``mfhd`` rewritten in place) and describes it
  (:func:`describe_chunk`), with the sha256 of its init segment.
- :func:`stitch` makes the rung's rendition of its chunks' descriptions, refusing chunks that do not
  join (another init segment, codec or picture size; a gap or an overlap in the numbering), and
  :func:`media_playlist` writes its HLS media playlist, growing (``EVENT``) or ended.

Why the segments are encoded from 0 and moved afterwards rather than encoded at their place in the
title (``-copyts``, ``-output_ts_offset``): measured with FFmpeg 5.1, a chunk muxed at its place gets
an init segment of its own, its edit list starting with an empty edit as long as the chunk's start; a
chunk encoded from 0 writes the first chunk's init segment byte for byte (same sample entry, same edit
list: the encoder's delay only), so one init segment serves the whole rung. Its first frame is moved to
exactly 0 (``setpts=PTS-STARTPTS``): at 30000/1001 fps a chunk starting at 20 s begins 0.6 frame later,
which FFmpeg's constant-rate output would otherwise round to its second frame slot, an empty edit again.

The place of a chunk is its first frame's slot on the rendition's constant-rate timeline: the rendition
writes frame ``n`` at ``n`` frame durations, and a chunk's first frame is the first one presented at or
after its start. Exact for constant frame rate sources (what the frame count and join checks measure);
a variable frame rate source is retimed onto each chunk's own grid, as the whole rendition is onto one.
Key frames are forced at each ``gop_seconds`` of the chunk's own time: on integer frame rates these are
the whole rendition's; at 30000/1001 fps one may fall a frame from where the unchunked rendition has it
(every rung of the package is chunked alike, so renditions stay aligned with one another).

What a chunk costs beyond its frames, measured on a 60 s 1920x1080 25 fps source (12 s chunks, abr-h264, 2
transcoders on a shared 2-core VM, each FFmpeg run's user and system time read one by one; the sums over
every process of the stack, per package): x264's own work per frame is the same in a chunk as in the
whole rung (user time +0.3 s on the 1080p rung's 6 chunks, +0.3, +0.8, +0.5 s on the others: FFmpeg's
start, the seek, the encoder's setup), since a key frame is forced every GOP either way and chunks start
on the source's key frames. What grew was system time at each run's start: x264 puts its frame buffers
on transparent huge pages from 720p up, and zeroing them cost about 1.1 s per 1080p run and 0.6 s per
720p run (+10.7 s for the package's 24 runs; ``mediainfo.child_setup`` now turns them off). The rest of
the difference is per child, outside FFmpeg: the S3 server answering 20 more runs' range reads, heads
and playlists (+3 to +4 s with moto), job events, KV and JetStream round trips (about +0.1 s a child
over NATS, the catalog, the API and the transcoder's own Python), and, in the benchmark, its counting
proxy naming each connection. No transcoder waits for work: the release keeps a window of children
queued, so both are busy from the first child to the last in either package.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import msgspec

from mpr_common.events import ChunkSpan, Rendition
from mpr_common.jobs import MAX_CHUNKS
from mpr_common.presets import Preset, Rung
from mpr_common.quality import merge

from .cmaf import (
    chunk_playlist_name,
    describe_rendition,
    fragment_samples,
    init_name,
    parse_media_playlist,
    read_init_segment,
)
from .fragments import shift_fragments

# A tail of the source shorter than this share of a segment joins the chunk before it: a container's
# duration often runs past the last frame (its sound is longer), and a chunk must hold at least a frame.
_SHORTEST_TAIL = 0.5

# --- planning ---------------------------------------------------------------------------------------


def plan_chunks(
    duration: float, preset: Preset, chunk_seconds: float, *, first_chunk_segments: int = 1
) -> list[ChunkSpan]:
    """The chunks of a title of ``duration`` seconds: the first ``first_chunk_segments`` segments long
    (a title becomes playable when its first chunks are encoded), the others ``chunk_seconds`` rounded up
    to whole segments, longer when the title would otherwise need more than ``MAX_CHUNKS``; the last one
    runs to the source's end (``end`` None). A title no longer than one chunk is one chunk."""
    seg = preset.hls_segment_seconds
    if not seg or seg <= 0:
        raise ValueError(f"preset {preset.name!r} has no segment length to cut chunks on")
    return plan_spans(duration, float(seg), chunk_seconds, first_chunk_units=first_chunk_segments)


def plan_spans(
    duration: float, unit: float, chunk_seconds: float, *, first_chunk_units: int = 1
) -> list[ChunkSpan]:
    """:func:`plan_chunks` on a grid of ``unit`` seconds (a segment, or a GOP): every chunk starts on a
    whole number of units (``first_segment`` counts them), the first ``first_chunk_units`` long."""
    seg = unit
    if not (math.isfinite(seg) and seg > 0):
        raise ValueError(f"chunks are cut on a positive number of seconds, not {unit}")
    if not (math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise ValueError(f"chunk_seconds must be positive, not {chunk_seconds}")
    if first_chunk_units < 1:
        raise ValueError("the first chunk must hold at least one segment")
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number of seconds, not {duration}")
    per = max(1, math.ceil(chunk_seconds / seg - 1e-9))
    # segments that start far enough before the end to begin a chunk
    starts = max(1, math.ceil((duration - _SHORTEST_TAIL * seg) / seg - 1e-9))
    if duration <= per * seg or starts <= first_chunk_units:
        return [ChunkSpan(index=0, start=0.0, end=None, first_segment=0)]
    rest = starts - first_chunk_units
    per = max(per, math.ceil(rest / (MAX_CHUNKS - 1)))
    firsts = [0, *range(first_chunk_units, starts, per)]
    ends: list[int | None] = [*firsts[1:], None]
    return [
        ChunkSpan(index=i, start=float(a * seg), end=None if b is None else float(b * seg), first_segment=a)
        for i, (a, b) in enumerate(zip(firsts, ends, strict=True))
    ]


def move_to_cuts(
    spans: list[ChunkSpan], cuts: Sequence[float], duration: float, *, tolerance: float, floor: float
) -> tuple[list[ChunkSpan], list[float]]:
    """``spans`` (cut on a grid, the last one to the source's end) with each boundary between two of
    them moved to the scene cut nearest it within ``tolerance`` seconds (the earlier of two as near), a
    boundary with no such cut left on the grid; a move never makes a chunk shorter than ``floor``
    seconds (the source's last chunk ends at ``duration``). Cuts are taken to the millisecond below
    (never past the cut's frame). Also returns the boundaries that moved, in order.

    Only for chunks joined by a stream copy into one file: a package's renditions must cut every rung
    on its segment grid. ``first_segment`` keeps the grid's count (a chunked transcode has no
    segments)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number of seconds, not {tolerance}")
    if not (math.isfinite(floor) and floor > 0):
        raise ValueError(f"floor must be a positive number of seconds, not {floor}")
    grid = [s.start for s in spans[1:]]
    usable = sorted({math.floor(c * 1000) / 1000 for c in cuts if math.isfinite(c) and 0 < c < duration})
    bounds: list[float] = []
    moved: list[float] = []
    before = 0.0  # where the chunk before the boundary starts (moved or not)
    for i, b in enumerate(grid):
        after = grid[i + 1] if i + 1 < len(grid) else duration  # where the next one ends at most
        window = usable[
            bisect.bisect_left(usable, b - tolerance) : bisect.bisect_right(usable, b + tolerance)
        ]
        near = [
            c
            for c in window
            if abs(c - b) <= tolerance and c - before >= floor and after - c >= floor and c != b
        ]
        if near:
            b = min(near, key=lambda c: (abs(c - b), c))
            moved.append(b)
        bounds.append(b)
        before = b
    starts = [0.0, *bounds]
    ends: list[float | None] = [*bounds, None]
    return [
        msgspec.structs.replace(s, start=a, end=e) for s, a, e in zip(spans, starts, ends, strict=True)
    ], moved


# --- one chunk, finished ----------------------------------------------------------------------------------


def chunk_ticks(start: float, timescale: int, frame_ticks: Fraction) -> int:
    """Where a chunk starting at ``start`` seconds begins on its rendition's timeline, in ``timescale``
    ticks: the slot of its first frame, the first one presented at or after ``start`` on a timeline of
    frames every ``frame_ticks``."""
    if frame_ticks <= 0:
        raise ValueError("frame duration must be positive")
    frames = math.ceil(Fraction(start) * timescale / frame_ticks)
    return round(frames * frame_ticks)


def place_chunk_segments(out_dir: Path, name: str, chunk: ChunkSpan) -> None:
    """Rewrite, in place, the media segments a chunk encoded from time 0 so that they continue the
    chunks before it: decode times from the chunk's first frame slot, sequence numbers global."""
    pl = parse_media_playlist((out_dir / chunk_playlist_name(name, chunk.index)).read_text())
    if not pl.segments:
        raise ValueError(f"rendition {name!r} chunk {chunk.index}: its playlist lists no segment")
    track = read_init_segment((out_dir / init_name(name)).read_bytes())
    count, ticks = fragment_samples((out_dir / pl.segments[0][0]).read_bytes(), track)
    if not (count and ticks and track.timescale):
        raise ValueError(f"rendition {name!r} chunk {chunk.index}: its first segment holds no frame")
    offset = chunk_ticks(chunk.start, track.timescale, Fraction(ticks, count))
    for uri, _ in pl.segments:
        path = out_dir / uri
        moved = shift_fragments(
            path.read_bytes(), ticks=offset, timescale=track.timescale, sequence=chunk.first_segment
        )
        path.write_bytes(moved)


def describe_chunk(out_dir: Path, name: str, rung: Rung, chunk: ChunkSpan) -> Rendition:
    """:func:`cmaf.describe_rendition` of one chunk, from its own playlist: its segments must be numbered
    from ``chunk.first_segment``; ``init_digest`` is the sha256 of the init segment it wrote."""
    r = describe_rendition(out_dir, name, rung, playlist=chunk_playlist_name(name, chunk.index))
    if r.start_number != chunk.first_segment:
        raise ValueError(
            f"rendition {name!r} chunk {chunk.index}: its segments start at number {r.start_number}, "
            f"not {chunk.first_segment}"
        )
    r.init_digest = hashlib.sha256((out_dir / init_name(name)).read_bytes()).hexdigest()
    return r


def finish_chunk(out_dir: Path, name: str, rung: Rung, chunk: ChunkSpan) -> Rendition:
    """After a chunk's FFmpeg run: its segments placed in the title, its description. Only the first
    chunk keeps its init segment for upload: the others wrote the same one (:func:`stitch` compares the
    digests), and must not replace it in the package's folder."""
    place_chunk_segments(out_dir, name, chunk)
    rendition = describe_chunk(out_dir, name, rung, chunk)
    if chunk.index > 0:
        (out_dir / init_name(name)).unlink()
    return rendition


# --- the rung, stitched --------------------------------------------------------------------------------


_SAME = ("name", "type", "playlist", "init", "media_pattern", "init_digest", "codecs", "width", "height")


def stitch(chunks: list[Rendition]) -> Rendition:
    """The whole rendition of a rung from its chunks' descriptions, in order: their segments one after
    the other. Raises ValueError (fit for the failed job's reason) when a chunk does not join the one
    before it: another init segment, codec or picture size, or numbering that skips or repeats.

    ``bandwidth`` is the largest of the chunks' peaks: runs of segments across a join are not measured
    (the chunks' descriptions carry no per-segment sizes), so the peak may be underestimated by up to
    what a run straddling a join would add. ``average_bandwidth`` is weighted by duration."""
    if not chunks:
        raise ValueError("no chunk to stitch")
    first = chunks[0]
    if first.init_digest is None:
        raise ValueError(f"rendition {first.name!r} chunk 0: no init segment digest")
    number = first.start_number
    for i, c in enumerate(chunks):
        for field in _SAME:
            mine, theirs = getattr(c, field), getattr(first, field)
            if mine != theirs:
                raise ValueError(
                    f"rendition {first.name!r} chunk {i}: {field} {mine!r} differs from chunk 0's {theirs!r}"
                )
        if c.start_number != number:
            raise ValueError(
                f"rendition {first.name!r} chunk {i}: its segments start at number {c.start_number}, "
                f"not {number} (the segment after chunk {i - 1}'s)"
            )
        if not c.segments:
            raise ValueError(f"rendition {first.name!r} chunk {i}: no segment")
        number += len(c.segments)
    segments = [d for c in chunks for d in c.segments]
    total = sum(segments)
    bits = sum(c.average_bandwidth * sum(c.segments) for c in chunks)
    return msgspec.structs.replace(
        first,
        segments=segments,
        bandwidth=max(c.bandwidth for c in chunks),
        average_bandwidth=math.ceil(bits / total) if total > 0 else 0,
        quality=merge([c.quality for c in chunks]),
    )


def media_playlist(rendition: Rendition, *, ended: bool) -> str:
    """The HLS media playlist of a rendition, stitched or still growing: an ``EVENT`` playlist (segments
    are only ever added), ``#EXT-X-ENDLIST`` once ``ended``. What ``cmaf.parse_media_playlist`` reads."""
    if not rendition.segments:
        raise ValueError(f"rendition {rendition.name!r} has no segment to list")
    # rounded to the millisecond first: a 4.000000 s segment must not count as 5
    target = math.ceil(round(max(rendition.segments), 3))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{rendition.start_number}",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{rendition.init}"',
    ]
    for i, d in enumerate(rendition.segments):
        lines += [f"#EXTINF:{d:.6f},", rendition.media_pattern % (rendition.start_number + i)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
