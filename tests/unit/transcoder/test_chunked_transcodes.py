"""Chunked transcodes, the pure parts: which transcodes are chunked, the plan of their children (over
generated durations and chunk lengths), its chunk boundaries moved to scene cuts (over generated cuts),
the checks a child passes, the FFmpeg commands of a chunk and of the join, and the scene cuts the
chunks find when none are kept, merged by the join (over generated cut lists) and kept once. Real FFmpeg:
tests/system/test_chunked_transcodes.py, tests/system/test_scenes.py."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.events import ChunkSpan, JobCompleted, JobRequested, MediaInfo
from mpr_common.jobs import CHUNK_SUFFIX, DEFAULT_CHUNK_SECONDS, MAX_CHUNKS, JobRequestError, normalize_job
from mpr_common.presets import AUDIO_RENDITION, PRESETS
from mpr_transcoder import kinds
from mpr_transcoder.ffmpeg.argv import input_args
from mpr_transcoder.kinds.base import JobContext
from mpr_transcoder.kinds.rendition.chunks import move_to_cuts
from mpr_transcoder.kinds.transcode.graph import (
    MAX_CHUNKED_ID,
    SOUND_WEIGHT,
    TranscodeGraph,
    TranscodeStore,
    as_planned,
    may_chunk,
    plan_transcode,
    transcode_spans,
)
from mpr_transcoder.kinds.transcode.parts import (
    CUT_TOLERANCE,
    GRID_SECONDS,
    SHORTEST_CHUNK,
    chunk_key_frames,
    chunk_scene_cuts,
    concat_list,
    join_args,
    merge_scene_cuts,
    video_chunk_args,
)
from mpr_transcoder.limits import Limits
from mpr_transcoder.scene_store import SceneStore
from mpr_transcoder.steps import StepRunner
from tests.fakes import RevisionKV

INFO = MediaInfo(duration=60.0, video_codec="h264", audio_codec="aac", width=640, height=360, fps=25.0)


def transcode(**fields) -> JobRequested:
    return normalize_job(JobRequested(job_id="t1", kind="transcode", source_key="in/film.mp4", **fields))


@settings(max_examples=300, deadline=None)
@given(
    duration=st.floats(min_value=0.1, max_value=100_000.0),
    chunk_seconds=st.floats(min_value=0.01, max_value=600.0),
)
def test_chunks_cover_the_source_once_in_order_on_the_grid(duration: float, chunk_seconds: float) -> None:
    job = transcode(chunk_seconds=chunk_seconds)
    spans = transcode_spans(job, msgspec.structs.replace(INFO, duration=duration))
    if not spans:  # one chunk's worth: the transcode runs as one job
        per = max(1, math.ceil(chunk_seconds / GRID_SECONDS - 1e-9)) * GRID_SECONDS
        assert duration <= per + GRID_SECONDS / 2
        return
    assert 2 <= len(spans) <= MAX_CHUNKS
    assert [s.index for s in spans] == list(range(len(spans)))
    assert spans[0].start == 0.0 and spans[-1].end is None  # from the first frame to the last
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end == b.start and a.start < b.start  # no gap, no overlap, in order
    for s in spans:
        units = s.start / GRID_SECONDS
        assert units == round(units) == s.first_segment  # every chunk starts on the grid
        assert s.start < duration
    lengths = {s.end - s.start for s in spans[:-1] if s.end is not None}
    assert len(lengths) == 1 and lengths.pop() >= chunk_seconds - 1e-9  # equal chunks, none too short


def _ms(t: float) -> float:
    return math.floor(t * 1000) / 1000


@st.composite
def cut_lists(draw, duration: float, grid: list[float]) -> list[float]:
    """Cuts anywhere (outside the source and not numbers too), and many near the grid's boundaries."""
    near = (
        st.builds(
            lambda g, d: g + d,
            st.sampled_from(grid),
            st.floats(min_value=-0.4, max_value=0.4).map(lambda f: f * 20),
        )
        if grid
        else st.nothing()
    )
    anywhere = st.floats(min_value=-0.1 * duration, max_value=1.1 * duration)
    odd = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, duration])
    return draw(st.lists(st.one_of(near, anywhere, odd), max_size=60))


@settings(max_examples=150, deadline=None)
@given(
    duration=st.floats(min_value=0.1, max_value=20_000.0),
    chunk_seconds=st.floats(min_value=0.5, max_value=300.0),
    data=st.data(),
)
def test_chunks_at_scene_cuts_cover_the_source_once_each_boundary_on_the_grid_or_a_near_cut(
    duration: float, chunk_seconds: float, data: st.DataObject
) -> None:
    job = transcode(chunk_seconds=chunk_seconds)
    info = msgspec.structs.replace(INFO, duration=duration)
    grid = transcode_spans(job, info)
    if not grid:
        return  # one job: no boundary to move (the grid's own test)
    cuts = data.draw(cut_lists(duration, [s.start for s in grid[1:]]))
    plan = plan_transcode(job, info, cuts)
    spans = plan.spans
    length = grid[1].start  # the grid's chunk length: every chunk but the last
    tolerance, floor = CUT_TOLERANCE * length, SHORTEST_CHUNK * length
    assert [s.index for s in spans] == [g.index for g in grid] == list(range(len(spans)))
    assert spans[0].start == 0.0 and spans[-1].end is None  # from the first frame to the last
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end == b.start and a.start < b.start  # no gap, no overlap, in order
    usable = {_ms(c) for c in cuts if math.isfinite(c) and 0 < c < duration}
    moved = []
    for s, g in zip(spans[1:], grid[1:], strict=True):
        if s.start != g.start:  # a grid point, or a cut near it
            assert s.start in usable and abs(s.start - g.start) <= tolerance, (s, g)
            moved.append(s.start)
    assert plan.at_cuts == moved
    for s, g in zip(spans, grid, strict=True):
        end = duration if s.end is None else s.end
        assert end - s.start >= floor - 1e-9 or (s.start, s.end) == (g.start, g.end), (s, g, floor)


def test_a_boundary_moves_to_the_nearest_cut_within_a_quarter_chunk_and_never_leaves_a_short_chunk() -> None:
    job = transcode(chunk_seconds=12)  # 60 s: boundaries at 12, 24, 36, 48; within 3 s; no chunk under 6 s
    cuts = [10.5, 13.0, 25.5, 30.0, 47.0004, 49.2, math.nan, -1.0, 75.0]
    plan = plan_transcode(job, INFO, cuts)
    assert [s.start for s in plan.spans] == [0.0, 13.0, 25.5, 36.0, 47.0]  # 36: no cut within 3 s
    assert [s.end for s in plan.spans] == [13.0, 25.5, 36.0, 47.0, None]
    assert plan.at_cuts == [13.0, 25.5, 47.0]  # 47.0004 to the millisecond below
    assert plan_transcode(job, INFO, [11.0, 13.0]).at_cuts == [11.0]  # as near: the earlier
    assert (
        plan_transcode(job, INFO).spans
        == plan_transcode(job, INFO, [30.0]).spans
        == transcode_spans(job, INFO)
    )
    # 27 s: chunks 0-12, 12-24, 24-27 on the grid; the last boundary moves only where the tail keeps 6 s
    short = msgspec.structs.replace(INFO, duration=27.0)
    assert plan_transcode(job, short, [26.0]).at_cuts == []
    assert plan_transcode(job, short, [22.0]).at_cuts == []  # 5 s: still under 6
    assert [s.start for s in plan_transcode(job, short, [21.0]).spans] == [0.0, 12.0, 21.0]


def test_moving_to_cuts_refuses_a_meaningless_tolerance_or_floor() -> None:
    spans = transcode_spans(transcode(chunk_seconds=12), INFO)
    for tolerance, floor in [(-1.0, 6.0), (math.nan, 6.0), (3.0, 0.0), (3.0, math.inf)]:
        with pytest.raises(ValueError):
            move_to_cuts(spans, [12.5], 60.0, tolerance=tolerance, floor=floor)
    assert move_to_cuts(spans, [12.5], 60.0, tolerance=0.0, floor=6.0) == (spans, [])


def test_a_chunks_key_frames_are_its_cuts_counted_from_its_first_frame() -> None:
    ntsc = 30000 / 1001
    chunk = ChunkSpan(index=1, start=2.0, end=10.0, first_segment=1)
    # its first frame is the source's 60th (2.002 s); the cut at frame 150 (5.005 s) is its 90th
    (t,) = chunk_key_frames([1.0, 5.005, 10.5], chunk, ntsc)
    assert math.ceil(t * ntsc - 1e-9) == 90  # forced on the cut's frame, not the one after
    assert chunk_key_frames([5.005], chunk, None) == [3.005]  # no rate: from its start
    # within MIN_KEY_GAP of the chunk's first frame (a key frame anyway) or of the last one kept: none
    assert chunk_key_frames([2.5, 4.0, 4.5, 9.99], chunk, 10.0) == [2.0, 7.99]
    last = ChunkSpan(index=2, start=10.0, end=None, first_segment=5)
    assert chunk_key_frames([12.0, 13.5], last, 10.0) == [2.0, 3.5]


async def test_a_transcode_planned_on_a_source_with_known_scenes_cuts_its_chunks_there(
    tmp_path: Path,
) -> None:
    class Heads:
        def head_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803 (boto3's names)
            assert (Bucket, Key) == ("in", "in/film.mp4")
            return {"ContentLength": 1000, "ETag": '"v1"'}

    scenes = SceneStore(RevisionKV(), "w1")  # type: ignore[arg-type]
    graph = TranscodeGraph(
        None,  # type: ignore[arg-type]
        Heads(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        TranscodeStore(RevisionKV()),  # type: ignore[arg-type]
        "out",
        "w1",
        workdir=tmp_path,
        limits=Limits(),
        bucket_in="in",
        scenes=scenes,
    )
    job = transcode(chunk_seconds=12)
    assert (await graph.plan_graph(job, INFO)).spans == transcode_spans(job, INFO)  # none known yet
    await scenes.offer("in", "in/film.mp4", "v0", 1000, [13.0])  # another version of the object
    assert (await graph.plan_graph(job, INFO)).at_cuts == []
    await scenes.offer("in", "in/film.mp4", "v1", 1000, [13.0, 30.0])  # this one's
    plan = await graph.plan_graph(job, INFO)
    assert [s.start for s in plan.spans] == [0.0, 13.0, 24.0, 36.0, 48.0] and plan.at_cuts == [13.0]
    assert (plan.source_etag, plan.source_size) == ("v1", 1000)  # the version its join keeps scenes of


def test_the_plan_is_the_sound_then_the_chunks_each_with_its_share() -> None:
    job = transcode(chunk_seconds=12, loudnorm=True)
    plan = plan_transcode(job, INFO)
    sound, *chunks = plan.jobs
    assert sound.job_id == "t1-audio" and sound.rendition == AUDIO_RENDITION and sound.chunk is None
    assert sound.loudnorm and sound.output_key == "in/film/t1/h264-720p.parts/audio.mp4"
    assert [c.job_id for c in chunks] == [f"t1{CHUNK_SUFFIX.format(index=i)}" for i in range(5)]
    assert [c.output_key for c in chunks] == [f"in/film/t1/h264-720p.parts/c{i:04d}.mp4" for i in range(5)]
    assert all(c.kind == "transcode" and c.parent_id == "t1" and c.preset == job.preset for c in plan.jobs)
    assert sum(c.weight for c in plan.jobs) == pytest.approx(1.0, abs=1e-5)  # shares of the whole job
    assert sum(c.weight for c in chunks) / sound.weight == pytest.approx(1 / SOUND_WEIGHT, rel=1e-4)
    for child in plan.jobs:  # every child is a valid job of its own
        assert normalize_job(child) == child
    silent = plan_transcode(job, msgspec.structs.replace(INFO, audio_codec=None))
    assert [c.chunk is not None for c in silent.jobs] == [True] * 5


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"chunk_seconds": 0}, "chunking off"),
        ({"preset": "vp9-720p"}, "WebM: not joined by stream copy"),
        ({"preset": "copy"}, "a stream copy: nothing to encode"),
        ({"start": 5.0}, "a range"),
        ({"job_id": "t" * (MAX_CHUNKED_ID + 1)}, "no room for its children's names"),
    ],
)
def test_what_is_never_chunked(fields: dict, why: str) -> None:
    job = (
        transcode(**fields)
        if "job_id" not in fields
        else normalize_job(JobRequested(kind="transcode", source_key="in/film.mp4", **fields))
    )
    assert not may_chunk(job), why
    assert transcode_spans(job, INFO) == []


def test_a_short_source_or_one_without_picture_runs_as_one_job() -> None:
    job = transcode()
    assert may_chunk(job) and len(transcode_spans(job, INFO)) == 60 / DEFAULT_CHUNK_SECONDS  # 60 s source
    assert transcode_spans(job, msgspec.structs.replace(INFO, duration=DEFAULT_CHUNK_SECONDS + 0.5)) == []
    assert transcode_spans(job, msgspec.structs.replace(INFO, video_codec=None)) == []
    assert transcode_spans(job, msgspec.structs.replace(INFO, duration=None)) == []
    with pytest.raises(JobRequestError, match="not chunked"):
        plan_transcode(job, msgspec.structs.replace(INFO, duration=5.0))


def test_a_child_runs_only_as_planned() -> None:
    plan = plan_transcode(transcode(chunk_seconds=12), INFO)
    chunk = plan.jobs[2]
    assert as_planned(chunk, plan) == chunk
    bare = JobRequested(job_id=chunk.job_id, kind="transcode", source_key="in/film.mp4", parent_id="t1")
    assert as_planned(msgspec.structs.replace(bare, chunk=chunk.chunk), plan) == chunk
    with pytest.raises(JobRequestError, match="differs"):
        as_planned(msgspec.structs.replace(chunk, output_key="elsewhere/x.mp4"), plan)
    with pytest.raises(JobRequestError, match="differs"):
        as_planned(msgspec.structs.replace(chunk, chunk=plan.jobs[3].chunk), plan)
    with pytest.raises(JobRequestError, match="not a child"):
        as_planned(msgspec.structs.replace(chunk, job_id="t1-c0099"), plan)


def test_a_video_chunk_encodes_its_range_alone_from_time_zero() -> None:
    preset = PRESETS["h264-720p"]
    source = input_args("https://s3/in/film.mp4?sig", 12.0, end=24.0)
    args = video_chunk_args(source, preset, Path("/w/out/chunk.mp4"), 1000)
    i = args.index("-i")
    assert args[i - 4 : i] == ["-ss", "12.000", "-to", "24.000"]  # input seeking: its byte range only
    assert args[args.index("-map") + 1] == "0:v:0" and "-an" in args
    assert args[args.index("-vf") + 1].startswith("setpts=PTS-STARTPTS,")
    assert args[args.index("-c:v") + 1] == "libx264" and args[args.index("-crf") + 1] == str(preset.crf)
    assert args[args.index("-flags") + 1] == "+cgop"  # closed GOPs: no frame refers to another chunk
    assert args[-3:] == ["-f", "mp4", "/w/out/chunk.mp4"] and args[args.index("-fs") + 1] == "1000"
    assert "-force_key_frames" not in args
    cut = video_chunk_args(source, preset, Path("/w/out/chunk.mp4"), 1000, key_frames=[2.5, 7.25])
    assert cut[cut.index("-force_key_frames") + 1] == "2.500,7.250"


def test_the_join_copies_the_chunks_and_the_sound_with_the_index_first() -> None:
    args = join_args(Path("/w/parts.ffconcat"), Path("/w/audio.mp4"), Path("/w/output.mp4"), "mp4", 5000)
    inputs = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
    assert inputs == ["/w/parts.ffconcat", "/w/audio.mp4"]
    assert args[args.index("-f") + 1] == "concat"
    assert args.count("-protocol_whitelist") == 2 and set(
        args[i + 1] for i, a in enumerate(args) if a == "-protocol_whitelist"
    ) == {"file"}
    assert ["-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-movflags", "+faststart"] == args[
        args.index("-map") : args.index("-map") + 8
    ]
    assert args[-3:] == ["-f", "mp4", "/w/output.mp4"]
    silent = join_args(Path("/w/parts.ffconcat"), None, Path("/w/output.mov"), "mov", 5000)
    assert "1:a:0" not in silent and silent.count("-i") == 1 and silent[-3:-1] == ["-f", "mov"]


def test_the_concat_list_names_plain_files_only() -> None:
    assert concat_list(["c0000.mp4", "c0001.mp4"]) == "ffconcat version 1.0\nfile c0000.mp4\nfile c0001.mp4\n"
    for bad in ["../x.mp4", "a b.mp4", "c'0.mp4", "", "/abs.mp4"]:
        with pytest.raises(ValueError):
            concat_list([bad])


def test_a_chunk_finds_scenes_as_a_second_output_of_its_own_span() -> None:
    source = input_args("https://s3/in/film.mp4?sig", 12.0, end=24.0)
    out = Path("/w/out/chunk.mp4")
    args = video_chunk_args(source, PRESETS["h264-720p"], out, 1000, find_scenes=True)
    main = args.index(str(out))
    assert args[:main] == video_chunk_args(source, PRESETS["h264-720p"], out, 1000)[:main]
    assert args[main + 1 : main + 3] == ["-map", "0:v:0"] and args[-3:] == ["-f", "null", "-"]
    assert "scdet=threshold=10" in args[args.index("-filter:v", main) + 1]
    assert args.count("-i") == 1  # the same decoded frames: bounded by the input's -to, no second read


class KnownScenes:
    """A job's view of the scene store: what it has kept of the source (None: nothing yet)."""

    def __init__(self, scenes: list[float] | None) -> None:
        self.scenes = scenes

    async def known(self) -> list[float] | None:
        return self.scenes


def run_chunk(
    tmp_path: Path, index: int, scenes: KnownScenes | None, logged: list[float]
) -> tuple[list, object]:
    """Plan and run a chunk of a 60 s transcode in 12 s chunks with a fake FFmpeg whose detector logs
    ``logged`` (seconds from the chunk's start): its command and its work."""
    child = plan_transcode(transcode(chunk_seconds=12), INFO).chunks[index]
    ctx = JobContext(
        child, PRESETS[child.preset or ""], "https://s3/in/film.mp4?sig", INFO, tmp_path, 10**9, Limits(),
        scenes=scenes,  # type: ignore[arg-type]
    )  # fmt: skip
    commands: list[list[str]] = []

    async def ffmpeg(args, progress, report=None, **_):
        commands.append(args)
        if report is not None and any("scdet" in a for a in args):
            report.write_text(
                "".join(f"[scdet @ 0x1] lavfi.scd.score: 30.1, lavfi.scd.time: {t:g}\n" for t in logged)
            )
        return []

    work = kinds.plan_work(ctx)
    asyncio.run(work.run(StepRunner(Limits(), asyncio.Event(), {}, lambda *_: None, work.expected, ffmpeg)))
    (command,) = commands
    return command, work


def test_a_chunk_runs_the_detector_only_when_its_sources_scenes_are_not_kept(tmp_path: Path) -> None:
    # chunk 1 is 12-24 s: what its detector logs is counted from 12 s; 0 is its first frame, 12 its end
    command, work = run_chunk(tmp_path / "a", 1, KnownScenes(None), [0.0, 3.5, 7.25, 12.0])
    assert any("scdet" in a for a in command) and work.scene_cuts == [15.5, 19.25]
    command, work = run_chunk(tmp_path / "b", 1, KnownScenes(None), [])
    assert any("scdet" in a for a in command) and work.scene_cuts == []  # looked, found none
    # kept already: key frames at them, no detector, nothing carried
    command, work = run_chunk(tmp_path / "c", 1, KnownScenes([13.0, 30.0]), [3.5])
    assert not any("scdet" in a for a in command) and work.scene_cuts is None
    assert command[command.index("-force_key_frames") + 1] == "1.000"
    # no store: nowhere to keep them, nothing to find
    command, work = run_chunk(tmp_path / "d", 1, None, [3.5])
    assert not any("scdet" in a for a in command) and work.scene_cuts is None


def test_a_chunks_cuts_are_on_the_sources_timeline_inside_its_span_after_its_first_frame() -> None:
    chunk = ChunkSpan(index=1, start=2.0, end=10.0, first_segment=1)
    ntsc = 30000 / 1001  # its first frame is at 2.002 s, 0.002 s into the chunk
    assert chunk_scene_cuts([0.002, 3.003, 3.003, 7.999, 8.0, math.nan], chunk, ntsc) == [5.003, 9.999]
    assert chunk_scene_cuts([0.0, 0.1], chunk, None) == [2.1]
    assert chunk_scene_cuts([0.5, 40.0], ChunkSpan(index=2, start=10.0), 10.0) == [10.5, 50.0]


@st.composite
def chunks_and_cuts(draw) -> tuple[list[tuple[ChunkSpan, list[float]]], float]:
    bounds = sorted(set(draw(st.lists(st.floats(0.1, 999.0), min_size=1, max_size=8))))
    duration = draw(st.floats(bounds[-1] + 0.01, 1000.0))
    starts = [0.0, *bounds]
    last_end = draw(st.sampled_from([None, duration]))
    spans = [
        ChunkSpan(index=i, start=a, end=b)
        for i, (a, b) in enumerate(zip(starts, [*bounds, last_end], strict=True))
    ]
    anything = st.floats(-10.0, 1100.0) | st.sampled_from([math.nan, math.inf, 0.0, *starts])
    return [(span, draw(st.lists(anything, max_size=6))) for span in spans], duration


@settings(max_examples=300, deadline=None)
@given(chunks_and_cuts())
def test_merged_cuts_are_sorted_once_inside_the_source_each_from_its_chunks_span(
    case: tuple[list[tuple[ChunkSpan, list[float]]], float],
) -> None:
    chunks, duration = case
    merged = merge_scene_cuts(chunks, duration)
    assert merged == sorted(set(merged))
    assert all(0.0 < c < duration for c in merged)
    for c in merged:  # from a chunk that found it, strictly inside that chunk's span (no boundary)
        assert any(c in cuts and span.start < c < (span.end or duration) for span, cuts in chunks)
    for span, cuts in chunks:  # and nothing a chunk saw inside its span is lost
        end = duration if span.end is None else span.end
        assert all(c in merged for c in cuts if span.start < c < end)


async def test_the_join_keeps_the_chunks_cuts_once_and_only_when_every_chunk_looked(tmp_path: Path) -> None:
    kv = RevisionKV()
    scenes = SceneStore(kv, "w1")  # type: ignore[arg-type]
    graph = TranscodeGraph(
        None, None, None, TranscodeStore(RevisionKV()), "out", "w1",  # type: ignore[arg-type]
        workdir=tmp_path, limits=Limits(), bucket_in="in", scenes=scenes,
    )  # fmt: skip
    plan = msgspec.structs.replace(
        plan_transcode(transcode(chunk_seconds=12), INFO), source_etag="v1", source_size=1000
    )

    def done(cuts: dict[int, list[float] | None]) -> dict[str, JobCompleted]:
        return {
            c.job_id: JobCompleted(
                job_id=c.job_id,
                output_key=c.output_key or "",
                output_bucket="out",
                scene_cuts=cuts[c.chunk.index] if c.chunk is not None else None,
            )  # fmt: skip
            for c in plan.jobs
        }

    found: dict[int, list[float] | None] = {0: [5.0], 1: [], 2: [30.5, 24.0], 3: [40.0], 4: [59.0]}
    # one chunk read the scenes (kept meanwhile by another job) or ran without the store: a partial list
    await graph.keep_scenes(plan, done({**found, 3: None}))
    assert await scenes.known("in", "in/film.mp4", "v1", 1000) is None and not kv.values
    await graph.keep_scenes(plan, done(found))
    # 24.0 is chunk 2's first frame (a boundary, never a cut it saw)
    assert await scenes.known("in", "in/film.mp4", "v1", 1000) == [5.0, 30.5, 40.0, 59.0]
    revision = kv.revision
    await graph.keep_scenes(plan, done({**found, 0: [6.0]}))  # a redelivered join: kept once
    assert kv.revision == revision
    assert await scenes.known("in", "in/film.mp4", "v1", 1000) == [5.0, 30.5, 40.0, 59.0]
    unread = msgspec.structs.replace(plan, source_etag="")  # the source's version unknown: nothing kept
    kv.values.clear()
    await graph.keep_scenes(unread, done(found))
    assert not kv.values
