"""Scene changes, the pure part: where pictures and clips are taken from a source's scenes (or evenly
when it has too few), which cuts get a forced key frame, and what identifies an object's entry."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from mpr_common.scenes import (
    DETECTING,
    MIN_KEY_GAP,
    SCENE_LEAD,
    SourceScenes,
    key_frame_times,
    scene_moments,
    scenes_key,
)

cuts = st.lists(st.floats(-5.0, 400.0, allow_nan=False, allow_infinity=False), max_size=40)


@st.composite
def sources(draw: st.DrawFn) -> tuple[float, list[float], list[float], float]:
    """A duration, its cuts, evenly spread moments within it and a clip length that fits them."""
    duration = draw(st.floats(0.5, 300.0, allow_nan=False))
    count = draw(st.integers(1, 8))
    length = draw(st.floats(0.0, duration / count))
    room = duration - length
    even = [round(room * (i + 0.5) / count, 3) for i in range(count)]
    return duration, draw(cuts), even, length


@given(sources())
def test_moments_lie_within_the_source_sorted_as_many_as_asked(src) -> None:
    duration, scenes, even, length = src
    moments, how = scene_moments(duration, scenes, even, length)
    assert len(moments) == len(even)
    assert moments == sorted(moments)
    assert all(0.0 <= m <= max(0.0, duration - length) + 1e-9 for m in moments)
    assert how in ("scenes", "even")
    if how == "scenes":  # each a little after a scene start, clips never overlapping
        starts = [0.0, *(c for c in scenes if 0.0 < c < duration)]
        assert all(
            any(math.isclose(m, min(duration - length, s + SCENE_LEAD), abs_tol=2e-3) for s in starts)
            for m in moments
        )
        assert all(b - a >= length - 1e-9 for a, b in zip(moments, moments[1:], strict=False))
    else:
        assert moments == sorted(even)


def test_clips_start_a_little_after_the_scene_starts_nearest_the_even_moments() -> None:
    moments, how = scene_moments(6.0, [2.0, 4.0], [0.5, 2.5, 4.5], 1.0)
    assert (moments, how) == ([0.2, 2.2, 4.2], "scenes")


def test_too_few_scenes_spread_evenly() -> None:
    assert scene_moments(12.0, [2.0, 4.0], [0.5, 2.5, 4.5, 6.5], 1.0) == ([0.5, 2.5, 4.5, 6.5], "even")
    assert scene_moments(12.0, [], [5.0], 0.0, include_start=False) == ([5.0], "even")


def test_a_poster_is_taken_after_the_cut_nearest_its_moment() -> None:
    assert scene_moments(60.0, [3.0, 7.5, 40.0], [6.0], include_start=False) == ([7.7], "scenes")


@given(cuts, st.floats(0.0, 100.0), st.one_of(st.none(), st.floats(0.0, 400.0)))
def test_forced_key_frames_are_inside_the_output_apart_and_sorted(scenes, start, end) -> None:
    times = key_frame_times(scenes, start, end)
    assert times == sorted(times)
    assert all(t >= MIN_KEY_GAP - 1e-9 for t in times)  # the first frame is a key frame anyway
    assert all(b - a >= MIN_KEY_GAP - 2e-3 for a, b in zip(times, times[1:], strict=False))
    if end is not None:
        assert all(start + t < end for t in times)
    # never after the cut's own frame: FFmpeg forces the first frame at or after each time
    assert all(any(0 <= (c - start) - t < 1e-3 for c in scenes) for t in times)


def test_key_frames_at_cuts_relative_to_the_output_start() -> None:
    assert key_frame_times([2.0, 2.4, 4.0, 9.0], start=1.0, end=8.0) == [1.0, 3.0]


def test_an_entry_describes_one_version_of_one_object() -> None:
    entry = SourceScenes(bucket="in", key="a.mp4", etag="e1", size=10, state=DETECTING)
    assert entry.is_of("in", "a.mp4", "e1", 10)
    assert not entry.is_of("in", "a.mp4", "e2", 10) and not entry.is_of("in", "a.mp4", "e1", 11)
    assert scenes_key("in", "a.mp4") == scenes_key("in", "a.mp4") != scenes_key("in", "b.mp4")
    assert set(scenes_key("in", "dir/ü x.mp4")) <= set("0123456789abcdef")
