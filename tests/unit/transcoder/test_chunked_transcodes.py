"""Chunked transcodes, the pure parts: which transcodes are chunked, the plan of their children (over
generated durations and chunk lengths), the checks a child passes, and the FFmpeg commands of a chunk
and of the join. Real FFmpeg: tests/system/test_chunked_transcodes.py."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.events import JobRequested, MediaInfo
from mpr_common.jobs import CHUNK_SUFFIX, MAX_CHUNKS, JobRequestError, normalize_job
from mpr_common.presets import AUDIO_RENDITION, PRESETS
from mpr_transcoder.ffmpeg.argv import input_args
from mpr_transcoder.kinds.transcode.graph import (
    MAX_CHUNKED_ID,
    SOUND_WEIGHT,
    as_planned,
    may_chunk,
    plan_transcode,
    transcode_spans,
)
from mpr_transcoder.kinds.transcode.parts import GRID_SECONDS, concat_list, join_args, video_chunk_args

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
    assert may_chunk(job) and len(transcode_spans(job, INFO)) == 5  # 60 s in DEFAULT_CHUNK_SECONDS
    assert transcode_spans(job, msgspec.structs.replace(INFO, duration=12.5)) == []
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
