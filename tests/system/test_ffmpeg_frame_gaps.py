"""Work bounded by what the source holds: a source whose timestamps jump (a frame hours after the previous
one) is refused in seconds, from FFmpeg's ``-progress`` reports, while variable frame rate sources, slides
and audio under a still picture go through. Properties of :class:`FrameGaps` on synthetic timelines, and
the runner on real FFmpeg with lavfi-made Matroska files of a few KB."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_transcoder.ffmpeg import FfmpegSourceGap, ProgressReport, run_ffmpeg
from mpr_transcoder.ffmpeg.argv import VIDEO_TIMING
from mpr_transcoder.ffmpeg.progress import _FRAME_ALLOWANCE, MAX_FRAME_GAP, FrameGaps, parse_progress_block
from tests.media import make_timed_mkv

pytestmark = pytest.mark.system

BASE = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-progress", "pipe:1"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def transcode(src: Path, out: Path) -> list[str]:
    """What build_plan asks of FFmpeg for a video, on a local file."""
    return [*BASE, "-i", str(src), "-map", "0:v:0", *H264, *VIDEO_TIMING, "-f", "mp4", str(out)]


# --- FrameGaps on synthetic timelines ---------------------------------------------------------------------


def vfr_reports(durations: list[float], cuts: list[int]) -> list[ProgressReport]:
    """The -progress blocks of a variable frame rate output of frames lasting ``durations``, one block
    after each frame index in ``cuts`` (FFmpeg reports every 0.5 s, so any split can happen)."""
    reports, t = [], 0.0
    for i, d in enumerate(durations):
        t += d
        if i in cuts or i == len(durations) - 1:
            reports.append(ProgressReport(out_time=t, frame=i + 1, dup_frames=0))
    return reports


def flagged(reports: list[ProgressReport], limit: float = MAX_FRAME_GAP) -> tuple[float, float] | None:
    gaps = FrameGaps(limit)
    for rep in reports:
        if found := gaps.gap(rep):
            return found
    return None


frame_durations = st.lists(st.floats(0.001, _FRAME_ALLOWANCE), min_size=1, max_size=200)
cut_points = st.sets(st.integers(0, 200), max_size=40)


@settings(max_examples=200, deadline=None)
@given(durations=frame_durations, cuts=cut_points)
def test_a_source_with_a_frame_at_least_every_second_is_never_refused(durations, cuts):
    assert flagged(vfr_reports(durations, cuts)) is None


@settings(max_examples=200, deadline=None)
@given(
    before=frame_durations,
    after=frame_durations,
    cuts=cut_points,
    gap=st.floats(MAX_FRAME_GAP + 1, 12 * 3600.0),
)
def test_a_jump_longer_than_the_limit_is_refused_wherever_the_reports_fall(before, after, cuts, gap):
    # The frame before the jump lasts ``gap``: the next one is that far ahead. Within one report, each
    # of the other frames may hide up to the allowance of the jump.
    durations = [*before, gap, *after]
    found = flagged(vfr_reports(durations, cuts))
    if gap > MAX_FRAME_GAP + _FRAME_ALLOWANCE * len(durations):
        assert found is not None
        seconds, at = found
        assert seconds > MAX_FRAME_GAP and at <= sum(before) + 1e-6


def test_slides_a_minute_each_are_not_a_jump():
    # Ten one-minute slides in one report: the run's own pace covers them once it is known.
    reports = vfr_reports([60.0] * 40, cuts={0, 9, 19, 29})
    assert flagged(reports) is None


def test_duplicates_without_a_new_picture_add_up_to_a_jump():
    # A constant frame rate output over a hole: FFmpeg 7 keeps reporting while it writes copies.
    gaps = FrameGaps(MAX_FRAME_GAP)
    assert gaps.gap(ProgressReport(out_time=2.0, frame=50, dup_frames=0)) is None
    t, frames, dups = 2.0, 50, 0
    found = None
    for _ in range(100):  # 400 s of copies per report
        t, frames, dups = t + 400, frames + 10_000, dups + 10_000
        if found := gaps.gap(ProgressReport(out_time=t, frame=frames, dup_frames=dups)):
            break
    assert found is not None and found[0] > MAX_FRAME_GAP and found[1] == pytest.approx(2.0)


def test_audio_going_on_after_the_picture_is_not_a_jump():
    gaps = FrameGaps(MAX_FRAME_GAP)
    assert gaps.gap(ProgressReport(out_time=5.0, frame=125, dup_frames=0)) is None
    for t in range(100, 40_000, 1000):  # the video ended at 5 s; the audio lasts 11 h
        assert gaps.gap(ProgressReport(out_time=float(t), frame=125, dup_frames=0)) is None


def test_audio_only_outputs_are_not_checked():
    gaps = FrameGaps(MAX_FRAME_GAP)
    for t in (0.0, 5000.0, 40_000.0):
        assert gaps.gap(ProgressReport(out_time=t, frame=None)) is None
        assert gaps.gap(ProgressReport(out_time=t, frame=0, dup_frames=0)) is None


progress_lines = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda k, v: f"{k}={v}",
            st.sampled_from(["frame", "dup_frames", "out_time_us", "out_time_ms", "total_size", "speed"]),
            st.one_of(st.text(max_size=12), st.integers(-(2**70), 2**70).map(str), st.just("N/A")),
        ),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(blocks=st.lists(progress_lines, max_size=10))
def test_any_progress_output_parses_and_never_breaks_the_gap_check(blocks):
    # -progress output comes from FFmpeg reading a source anyone uploads: whatever it prints, the
    # parser and the check return, and only numbers reach them.
    gaps = FrameGaps(MAX_FRAME_GAP)
    for block in blocks:
        rep = parse_progress_block([*block, "progress=continue"])
        for value in (rep.frame, rep.dup_frames, rep.total_size):
            assert value is None or isinstance(value, int)
        assert rep.out_time is None or rep.out_time >= 0
        result = gaps.gap(rep)
        assert result is None or result[0] > MAX_FRAME_GAP


# --- the runner on real FFmpeg ------------------------------------------------------------------------------


async def test_a_40000_second_jump_is_refused_in_seconds(tmp_path):
    src = make_timed_mkv(tmp_path / "gap.mkv", 2, "if(eq(N,0),0,40000)")
    assert src.stat().st_size < 20_000
    t0 = time.monotonic()
    with pytest.raises(FfmpegSourceGap) as err:
        await asyncio.wait_for(
            run_ffmpeg(transcode(src, tmp_path / "o.mp4"), lambda r: None, timeout=600), 120
        )
    assert time.monotonic() - t0 < 30
    assert re.search(r"the source.s timestamps jump by about 399\d\ds after 0.0s", str(err.value))
    assert err.value.gap > 39_000 and err.value.at == pytest.approx(0.0, abs=1)


async def test_a_jump_in_the_middle_of_real_video_is_refused(tmp_path):
    # 20 s of video at 25 fps, then a frame 40,000 s later, then 4 s more.
    src = make_timed_mkv(tmp_path / "mid.mkv", 600, "N*0.04+if(gte(N,500),40000,0)")
    with pytest.raises(FfmpegSourceGap) as err:
        await run_ffmpeg(transcode(src, tmp_path / "o.mp4"), lambda r: None, timeout=600)
    assert err.value.gap > 30_000 and 0 <= err.value.at <= 20.5


async def test_a_variable_frame_rate_source_is_transcoded_frame_for_frame(tmp_path):
    # 4 s at 25 fps, 10 slides of 20 s, 2 s at 50 fps: 290 frames over 206 s.
    pts = "if(lt(N,100),N*0.04,if(lt(N,110),4+(N-100)*20,204+(N-110)*0.02))"
    src = make_timed_mkv(tmp_path / "vfr.mkv", 210, pts)
    out = tmp_path / "o.mp4"
    reports: list[ProgressReport] = []
    await run_ffmpeg(transcode(src, out), reports.append, timeout=120)
    assert reports[-1].done and reports[-1].dup_frames == 0 and reports[-1].frame == 210
    assert reports[-1].out_time == pytest.approx(204 + 100 * 0.02, abs=0.5)
    assert out.stat().st_size > 0


async def test_sheets_that_each_stand_for_many_frames_are_not_a_jump(tmp_path):
    # A storyboard's sprite sheets: one output picture per 10 tiles, a tile every 100 s of source, so
    # the output time leaps 1,000 s a picture. Only commands that write source frames one for one
    # (VIDEO_TIMING) count leaps; the sheets come from source frames and pass.
    src = make_timed_mkv(tmp_path / "slides.mkv", 40, "N*100")
    args = [*BASE, "-i", str(src), "-vf", "tile=10x1", "-fps_mode", "passthrough"]
    reports: list[ProgressReport] = []
    await run_ffmpeg([*args, "-f", "image2", str(tmp_path / "s%03d.jpg")], reports.append, timeout=120)
    assert reports[-1].done and reports[-1].frame == 4 and (reports[-1].out_time or 0) > 3000
    with pytest.raises(FfmpegSourceGap):  # the same leaps where frames are written one for one
        await run_ffmpeg(transcode(src, tmp_path / "o.mp4"), lambda r: None, timeout=120, max_frame_gap=60)


def test_duplicates_count_in_every_command_leaps_only_where_frames_are_the_sources():
    sheets = FrameGaps(MAX_FRAME_GAP, leaps=False)
    assert all(
        sheets.gap(ProgressReport(out_time=1000.0 * i, frame=i, dup_frames=0)) is None for i in range(1, 30)
    )
    copies = FrameGaps(MAX_FRAME_GAP, leaps=False)
    copies.gap(ProgressReport(out_time=1.0, frame=25, dup_frames=0))
    found = [
        copies.gap(ProgressReport(out_time=1.0 + 100 * i, frame=25 + 2500 * i, dup_frames=2500 * i))
        for i in range(1, 20)
    ]
    assert any(found)
