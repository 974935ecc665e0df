"""Chunked renditions, the pure parts: planning chunks on segment boundaries, moving a media segment's
timestamps and sequence numbers (over generated box trees), stitching chunk descriptions, the media
playlist, the chunk's command, and the rendition kind's plan for a chunk child. Real FFmpeg output:
tests/system/test_chunked_renditions.py."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.events import ChunkSpan, JobRequested, MediaInfo, Rendition
from mpr_common.jobs import MAX_CHUNKS
from mpr_common.presets import PRESETS
from mpr_common.quality import quality_of
from mpr_transcoder.ffmpeg.argv import input_args
from mpr_transcoder.job_errors import JobError
from mpr_transcoder.kinds import rendition as rendition_kind
from mpr_transcoder.kinds.base import JobContext
from mpr_transcoder.kinds.rendition import cmaf
from mpr_transcoder.kinds.rendition.chunks import chunk_ticks, media_playlist, plan_chunks, stitch
from mpr_transcoder.kinds.rendition.fragments import shift_fragments
from mpr_transcoder.limits import Limits

PRESET = PRESETS["abr-h264"]
SEG = PRESET.hls_segment_seconds or 0
INFO = MediaInfo(duration=60.0, video_codec="h264", audio_codec="aac", width=640, height=360, fps=25.0)

# --- planning -----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    duration=st.floats(min_value=0.0, max_value=200_000.0),
    chunk_seconds=st.floats(min_value=0.01, max_value=600.0),
    first=st.integers(min_value=1, max_value=5),
)
def test_chunks_cover_the_title_on_segment_boundaries(
    duration: float, chunk_seconds: float, first: int
) -> None:
    chunks = plan_chunks(duration, PRESET, chunk_seconds, first_chunk_segments=first)
    assert 1 <= len(chunks) <= MAX_CHUNKS
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start == 0.0 and chunks[-1].end is None
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.end == b.start and a.start < b.start  # contiguous, ordered
    for c in chunks:
        assert c.start % SEG == 0 and (c.end is None or c.end % SEG == 0)
        assert c.first_segment * SEG == c.start
        assert c.start < max(duration, SEG)  # no chunk starts at or after the end
    per = max(1, -(-chunk_seconds // SEG)) * SEG
    if len(chunks) > 1:
        assert chunks[0].end == first * SEG
        assert duration - chunks[-1].start > SEG / 2  # a chunk holds frames
        middle = {c.end - c.start for c in chunks[1:-1] if c.end is not None}
        assert len(middle) <= 1 and all(m >= per for m in middle)
        if middle and middle != {per}:  # longer chunks only to stay within MAX_CHUNKS
            assert duration > (MAX_CHUNKS - 1) * per
        assert duration - chunks[-1].start <= max(middle | {per}) + SEG / 2
    else:
        assert duration <= per or duration - first * SEG <= SEG / 2


def test_chunk_plans() -> None:
    assert plan_chunks(12.0, PRESET, 12.0) == [ChunkSpan(index=0, start=0.0, end=None, first_segment=0)]
    assert [(c.start, c.end, c.first_segment) for c in plan_chunks(31.0, PRESET, 10.0)] == [
        (0.0, 4.0, 0),
        (4.0, 16.0, 1),
        (16.0, 28.0, 4),
        (28.0, None, 7),
    ]
    # a tail of less than half a segment joins the last chunk
    assert [c.start for c in plan_chunks(29.9, PRESET, 12.0, first_chunk_segments=2)] == [0.0, 8.0, 20.0]
    assert [c.start for c in plan_chunks(30.1, PRESET, 12.0, first_chunk_segments=2)] == [0.0, 8.0, 20.0]
    # a long title gets longer chunks, never more than MAX_CHUNKS
    long = plan_chunks(4.0 * 3 * MAX_CHUNKS, PRESET, 4.0)  # 29997 segments: 29996 after the first
    assert len(long) == 1 + 29996 // 4 <= MAX_CHUNKS  # chunks of ceil(29996 / 9998) = 4 segments
    assert long[1].end is not None and long[1].end - long[1].start == 16.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="chunk_seconds"):
            plan_chunks(60.0, PRESET, bad)
    with pytest.raises(ValueError, match="segment length"):
        plan_chunks(60.0, PRESETS["h264-720p"], 12.0)
    with pytest.raises(ValueError, match="first chunk"):
        plan_chunks(60.0, PRESET, 12.0, first_chunk_segments=0)


def test_chunk_starts_at_its_first_frame_slot() -> None:
    assert chunk_ticks(4.0, 12800, Fraction(512)) == 51200  # 25 fps: frame 100 is at 4 s
    assert chunk_ticks(4.0, 30000, Fraction(1001)) == 120 * 1001  # 30000/1001: frame 120 at 4.004 s
    assert chunk_ticks(20.0, 30000, Fraction(1001)) == 600 * 1001  # 0.6 frame after 20 s
    assert chunk_ticks(0.0, 30000, Fraction(1001)) == 0
    with pytest.raises(ValueError):
        chunk_ticks(4.0, 30000, Fraction(0))


# --- moving a media segment ------------------------------------------------------------------------------


def box(kind: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def full(kind: str, version: int, body: bytes) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + body)


@st.composite
def segments(draw) -> tuple[bytes, dict[str, list[int]]]:
    """A media segment as a box tree: styp, maybe sidx, moofs (mfhd, trafs with tfhd/tfdt/trun), mdat,
    other boxes anywhere; and the values of the fields that move, in order."""
    values: dict[str, list[int]] = {"mfhd": [], "tfdt": [], "sidx": []}
    other = st.builds(
        lambda k, p: box(k, p), st.sampled_from(["free", "udta", "emsg"]), st.binary(max_size=12)
    )
    parts = [box("styp", b"msdhmsix")]
    if draw(st.booleans()):
        v = draw(st.integers(0, 1))
        ept = draw(st.integers(0, 2**31 if v == 0 else 2**40))
        values["sidx"].append(ept)
        ept_bytes = struct.pack(">I", ept) if v == 0 else struct.pack(">Q", ept)
        parts.append(full("sidx", v, struct.pack(">II", 1, 12800) + ept_bytes + bytes(12)))
    for _ in range(draw(st.integers(1, 3))):
        seq = draw(st.integers(0, 2**31))
        values["mfhd"].append(seq)
        trafs = []
        for _ in range(draw(st.integers(1, 2))):
            v = draw(st.integers(0, 1))
            t = draw(st.integers(0, 2**31 if v == 0 else 2**40))
            values["tfdt"].append(t)
            tfdt = full("tfdt", v, struct.pack(">I", t) if v == 0 else struct.pack(">Q", t))
            body = [full("tfhd", 0, struct.pack(">I", 1)), tfdt, full("trun", 0, struct.pack(">I", 0))]
            if draw(st.booleans()):
                body.insert(draw(st.integers(0, 3)), draw(other))
            trafs.append(box("traf", b"".join(body)))
        parts.append(box("moof", full("mfhd", 0, struct.pack(">I", seq)) + b"".join(trafs)))
        parts.append(box("mdat", draw(st.binary(max_size=32))))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(1, len(parts))), draw(other))
    return b"".join(parts), values


def read_fields(data: bytes) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"mfhd": [], "tfdt": [], "sidx": []}

    def walk(start: int, end: int) -> None:
        for kind, s, e in cmaf.iter_boxes(data, start, end):
            if kind in ("moof", "traf"):
                walk(s, e)
            elif kind == "mfhd":
                found["mfhd"].append(struct.unpack_from(">I", data, s + 4)[0])
            elif kind == "tfdt":
                found["tfdt"].append(struct.unpack_from(">Q" if data[s] else ">I", data, s + 4)[0])
            elif kind == "sidx":
                found["sidx"].append(struct.unpack_from(">Q" if data[s] else ">I", data, s + 12)[0])

    walk(0, len(data))
    return found


@settings(max_examples=200, deadline=None)
@given(segment=segments(), ticks=st.integers(0, 2**20), sequence=st.integers(0, 10_000))
def test_shift_moves_decode_times_and_sequence_numbers_only(
    segment: tuple[bytes, dict[str, list[int]]], ticks: int, sequence: int
) -> None:
    data, values = segment
    moved = shift_fragments(data, ticks=ticks, timescale=12800, sequence=sequence)
    assert len(moved) == len(data)
    assert read_fields(moved) == {
        "mfhd": [v + sequence for v in values["mfhd"]],
        "tfdt": [v + ticks for v in values["tfdt"]],
        "sidx": [v + ticks for v in values["sidx"]],
    }
    changed = [i for i, (a, b) in enumerate(zip(data, moved, strict=True)) if a != b]
    assert len(changed) <= 8 * (len(values["mfhd"]) + len(values["tfdt"]) + len(values["sidx"]))
    # and back: the offsets round-trip to the very bytes
    assert shift_fragments(moved, ticks=-ticks, timescale=12800, sequence=-sequence) == data


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), ticks=st.integers(-(2**33), 2**33), sequence=st.integers(-5, 5))
def test_shift_of_garbage_raises_value_error_only(data: bytes, ticks: int, sequence: int) -> None:
    try:
        shift_fragments(data, ticks=ticks, timescale=30000, sequence=sequence)
    except ValueError:
        pass


@settings(max_examples=100, deadline=None)
@given(segment=segments(), cut=st.integers(1, 400))
def test_shift_of_truncated_segment_raises_value_error_only(
    segment: tuple[bytes, dict[str, list[int]]], cut: int
) -> None:
    data = segment[0][: max(0, len(segment[0]) - cut)]
    try:
        shift_fragments(data, ticks=1000, timescale=12800, sequence=1)
    except ValueError:
        pass


def test_shift_refuses_what_its_fields_cannot_hold() -> None:
    tfdt0 = box(
        "moof",
        full("mfhd", 0, struct.pack(">I", 1)) + box("traf", full("tfdt", 0, struct.pack(">I", 2**32 - 10))),
    )
    with pytest.raises(ValueError, match="tfdt"):
        shift_fragments(tfdt0, ticks=10, timescale=90000, sequence=0)
    with pytest.raises(ValueError, match="mfhd"):
        shift_fragments(tfdt0, ticks=0, timescale=90000, sequence=-2)
    with pytest.raises(ValueError, match="no moof"):
        shift_fragments(box("mdat", b"x"), ticks=0, timescale=90000, sequence=0)
    sidx = full("sidx", 1, struct.pack(">II", 1, 1000) + struct.pack(">Q", 0) + bytes(12))
    with pytest.raises(ValueError, match="sidx timescale"):
        shift_fragments(sidx + tfdt0, ticks=1, timescale=90000, sequence=0)
    # a sidx in another timescale moves by the same time
    small = box(
        "moof", full("mfhd", 0, struct.pack(">I", 1)) + box("traf", full("tfdt", 1, struct.pack(">Q", 0)))
    )
    moved = shift_fragments(sidx + small, ticks=900, timescale=90000, sequence=0)
    assert read_fields(moved)["sidx"] == [10]


# --- stitching and listing --------------------------------------------------------------------------------


def part(start: int, segments: list[float], **changes) -> Rendition:
    r = Rendition(
        name="360p",
        type="video",
        playlist="360p.m3u8",
        init="360p_init.mp4",
        media_pattern="360p_%05d.m4s",
        segments=segments,
        start_number=start,
        bandwidth=800_000,
        average_bandwidth=500_000,
        codecs="avc1.64001e",
        width=640,
        height=360,
        frame_rate=25.0,
        init_digest="ab" * 32,
    )
    return msgspec.structs.replace(r, **changes)


def test_stitch_joins_chunks_in_order() -> None:
    parts = [
        part(0, [4.0]),
        part(1, [4.0, 4.0], bandwidth=900_000, average_bandwidth=400_000),
        part(3, [4.0, 1.5], bandwidth=700_000),
    ]
    r = stitch(parts)
    assert r.segments == [4.0, 4.0, 4.0, 4.0, 1.5] and r.start_number == 0
    assert r.bandwidth == 900_000
    assert r.average_bandwidth == -(-(500_000 * 4 + 400_000 * 8 + 500_000 * 5.5) // 17.5)
    assert (r.codecs, r.width, r.height, r.init, r.init_digest) == (
        "avc1.64001e",
        640,
        360,
        "360p_init.mp4",
        "ab" * 32,
    )
    assert stitch([parts[0]]) == parts[0]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (part(1, [4.0], init_digest="cd" * 32), "chunk 1: init_digest 'cdcd"),
        (part(1, [4.0], codecs="avc1.640028"), "chunk 1: codecs 'avc1.640028' differs"),
        (part(1, [4.0], width=480), "chunk 1: width 480 differs from chunk 0's 640"),
        (part(1, [4.0], height=270), "chunk 1: height"),
        (part(2, [4.0]), "chunk 1: its segments start at number 2, not 1"),
        (part(0, [4.0]), "chunk 1: its segments start at number 0, not 1"),
        (part(1, []), "chunk 1: no segment"),
    ],
)
def test_stitch_refuses_chunks_that_do_not_join(second: Rendition, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        stitch([part(0, [4.0]), second])


def test_stitch_needs_chunks_with_their_init_digest() -> None:
    with pytest.raises(ValueError, match="no chunk"):
        stitch([])
    with pytest.raises(ValueError, match="digest"):
        stitch([part(0, [4.0], init_digest=None)])


def test_media_playlist_text() -> None:
    r = part(3, [4.004, 4.004, 2.5])
    growing = media_playlist(r, ended=False)
    assert growing == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:3\n"
        "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="360p_init.mp4"\n'
        "#EXTINF:4.004000,\n360p_00003.m4s\n#EXTINF:4.004000,\n360p_00004.m4s\n"
        "#EXTINF:2.500000,\n360p_00005.m4s\n"
    )
    ended = media_playlist(r, ended=True)
    assert ended == growing + "#EXT-X-ENDLIST\n"
    pl = cmaf.parse_media_playlist(ended)
    assert pl.init == r.init and pl.target_duration == 5
    assert pl.segments == [("360p_00003.m4s", 4.004), ("360p_00004.m4s", 4.004), ("360p_00005.m4s", 2.5)]
    assert "#EXT-X-TARGETDURATION:4\n" in media_playlist(part(0, [4.0, 4.0000001]), ended=True)
    with pytest.raises(ValueError, match="no segment"):
        media_playlist(part(0, []), ended=True)


# --- the chunk's command and job --------------------------------------------------------------------------


def test_input_stops_at_the_chunk_end() -> None:
    assert input_args("https://s3/x.mp4", 4.0, end=16.0)[-6:] == [
        "-ss",
        "4.000",
        "-to",
        "16.000",
        "-i",
        "https://s3/x.mp4",
    ]
    assert input_args("https://s3/x.mp4", 0.0, end=4.0)[-4:] == ["-to", "4.000", "-i", "https://s3/x.mp4"]
    assert "-to" not in input_args("https://s3/x.mp4", 4.0)


def test_chunk_rendition_args() -> None:
    rung, out = PRESET.ladder[-1], Path("/work/pkg")
    chunk = ChunkSpan(index=3, start=16.0, end=28.0, first_segment=4)
    inp = input_args("https://s3/x.mp4", chunk.start, end=chunk.end)
    args = cmaf.chunk_rendition_args(inp, PRESET, rung, INFO, out, chunk)
    whole = cmaf.rendition_args(input_args("https://s3/x.mp4"), PRESET, rung, INFO, out)
    assert args[args.index("-i") - 5 : args.index("-i") + 2] == inp[-7:]
    assert args[args.index("-filter:v") + 1] == "setpts=PTS-STARTPTS," + cmaf.video_filter(rung)
    assert args[args.index("-start_number") + 1] == "4" and whole[whole.index("-start_number") + 1] == "0"
    assert args[-2:] == [str(out / "360p_%05d.m4s"), str(out / "360p.c0003.m3u8")]
    assert args[args.index("-hls_fmp4_init_filename") + 1] == "360p_init.mp4"
    # the very encoder and muxer options of the whole rendition
    encoder = cmaf.video_encoder_args(PRESET, rung, INFO)
    assert args[args.index("-c:v") : args.index("-c:v") + len(encoder)] == encoder
    assert args[args.index("-avoid_negative_ts") : -2] == [
        ("4" if a == "0" and whole[i - 1] == "-start_number" else a)
        for i, a in enumerate(
            whole[whole.index("-avoid_negative_ts") : -2], start=whole.index("-avoid_negative_ts")
        )
    ]
    with pytest.raises(ValueError, match="-i"):
        cmaf.chunk_rendition_args(["https://s3/x.mp4"], PRESET, rung, INFO, out, chunk)
    with pytest.raises(ValueError, match="no video"):
        cmaf.chunk_rendition_args(
            inp, PRESET, rung, msgspec.structs.replace(INFO, video_codec=None), out, chunk
        )


def context(tmp_path: Path, rendition: str, chunk: ChunkSpan | None) -> JobContext:
    job = JobRequested(
        job_id="pkg-360p-c0003",
        kind="rendition",
        source_key="in/x.mp4",
        output_key="out/pkg/360p.c0003.m3u8",
        preset=PRESET.name,
        rendition=rendition,
        parent_id="pkg",
        chunk=chunk,
    )
    return JobContext(job, PRESET, "https://s3/x.mp4", INFO, tmp_path, 10**9, Limits())


def test_a_chunk_child_plans_its_chunk(tmp_path: Path) -> None:
    chunk = ChunkSpan(index=3, start=16.0, end=28.0, first_segment=4)
    work = rendition_kind.plan(context(tmp_path, "360p", chunk))
    assert work.main == tmp_path / "out" / "360p.c0003.m3u8"
    assert work.expected == 12.0 and work.segment_glob is None  # segments are placed before any upload
    last = rendition_kind.plan(context(tmp_path, "360p", ChunkSpan(index=4, start=52.0, first_segment=13)))
    assert last.expected == 8.0
    whole = rendition_kind.plan(context(tmp_path, "360p", None))
    assert whole.main.name == "360p.m3u8" and whole.segment_glob == "360p_*.m4s"
    with pytest.raises(JobError, match="never chunked"):
        rendition_kind.plan(context(tmp_path, "audio", chunk))


def test_stitch_merges_its_chunks_quality_from_their_frames() -> None:
    first = quality_of([40.0, 30.0, 50.0], [0.9, 0.8, 0.95], width=640, height=360, keep_frames=True)
    second = quality_of([35.0, 45.0], [0.85, 0.99], width=640, height=360, keep_frames=True)
    r = stitch([part(0, [4.0], quality=first), part(1, [4.0], quality=second)])
    assert r.quality == quality_of(
        [40.0, 30.0, 50.0, 35.0, 45.0], [0.9, 0.8, 0.95, 0.85, 0.99], width=640, height=360
    )
    assert r.quality is not None and r.quality.frames == 5 and r.quality.frame_psnr == []
    # a chunk its encoder could not measure: the rung has no quality rather than a partial one
    assert stitch([part(0, [4.0], quality=first), part(1, [4.0])]).quality is None
