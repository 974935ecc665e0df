"""A job graph's release window, pure: which children go out next, given the plan's order, how far the
release stands, what runs and what has finished. Hypothesis drives whole graphs through random starts,
completions and idle counts: no child is released twice, never more than the window is outstanding nor
more than the floor (or the idle slots) queued, everything goes out in the plan's order, and in the end."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_transcoder.kinds.graph.release_window import outstanding, release_up_to, window

ORDER = [f"c{i}" for i in range(10)]
NONE: set[str] = set()


def test_the_first_release_is_the_floor_or_the_lead_or_the_idle_slots_whichever_is_most():
    assert release_up_to(ORDER, 0, NONE, NONE, floor=3) == 3
    assert release_up_to(ORDER, 0, NONE, NONE, floor=3, lead=5) == 5  # what playing needs, at once
    assert release_up_to(ORDER, 0, NONE, NONE, floor=3, idle=7) == 7  # every free slot filled
    assert release_up_to(ORDER, 0, NONE, NONE, floor=30) == len(ORDER)


def test_the_queued_children_are_topped_up_to_the_floor_beside_the_running_ones():
    assert release_up_to(ORDER, 3, NONE, NONE, floor=3) == 3  # three queued: nothing more
    assert release_up_to(ORDER, 3, NONE, {"c0"}, floor=3) == 4  # one taken: one more queued
    assert release_up_to(ORDER, 4, NONE, {"c0"}, floor=3) == 4  # the same seen again: nothing
    # c0 completed, c1 taken by the transcoder that completed it: c2, c3 queued, one more
    assert release_up_to(ORDER, 4, {"c0"}, {"c1"}, floor=3) == 5
    # idle slots: released for them, above the floor
    assert release_up_to(ORDER, 5, {"c0"}, {"c1"}, floor=3, idle=5) == 7
    assert window(3, 0, 1, 5) == 6 and outstanding(ORDER, 7, {"c0"}) == 6


def test_finished_children_are_passed_over_without_taking_room():
    # a retried graph: c2..c4 completed in the earlier run; they go out (and end at once) on the way
    assert release_up_to(ORDER, 0, {"c2", "c3", "c4"}, NONE, floor=3) == 6
    assert release_up_to(ORDER, 8, set(ORDER[:8]) | {"c9"}, NONE, floor=1) == 10


def test_a_release_mark_outside_the_order_is_refused():
    with pytest.raises(ValueError):
        release_up_to(ORDER, 11, NONE, NONE, floor=1)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=40),
    floor=st.integers(min_value=1, max_value=8),
    lead=st.integers(min_value=0, max_value=12),
    done_before=st.sets(st.integers(min_value=0, max_value=39), max_size=10),
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=1000), st.integers(0, 4)), max_size=300
    ),
)
def test_a_graph_is_released_once_in_order_within_its_window_and_wholly(n, floor, lead, done_before, steps):
    order = [f"c{i}" for i in range(n)]
    finished = {order[i] for i in done_before if i < n}  # completed in an earlier generation
    running: set[str] = set()
    released_log: list[str] = []
    released = 0

    def release(idle: int) -> list[str]:
        nonlocal released
        taken = len(running)
        upto = release_up_to(order, released, finished, running, floor, lead, idle)
        assert released <= upto <= n
        out = order[released:upto]
        released_log.extend(out)
        released = upto
        busy = outstanding(order, released, finished)
        queued = busy - taken
        limit = window(floor, lead, taken, idle)
        # never more than the window outstanding, nor more queued than the floor, the idle slots or
        # the lead; short of it only once everything is out
        assert busy <= max(limit, outstanding(order, released - len(out), finished))
        assert queued <= max(floor, idle, lead) or not [c for c in out if c not in finished]
        if released < n:
            assert busy >= limit
        return [c for c in out if c not in finished]

    release(0)  # the fan-out
    moves = iter(steps)
    while released < n or any(c not in finished for c in order):
        queued = [c for c in order[:released] if c not in finished and c not in running]
        assert queued or running, "stalled: nothing outstanding and children left to release"
        start, pick, idle = next(moves, (False, 0, 0))
        if queued and (start or not running):  # a slot takes the first queued child (stream order)
            running.add(queued[0])
            continue
        done = sorted(running)[pick % len(running)]
        running.discard(done)
        finished.add(done)  # completions in any order
        release(idle)
        assert release(0) == []  # a redelivery of the same completion runs nothing more
    assert released_log == order  # once each, in the plan's order, every one of them


def test_the_window_setting_is_read_once_with_its_default_and_never_below_one():
    from mpr_transcoder.settings import DEFAULT_RELEASE_WINDOW, TranscoderSettings

    assert TranscoderSettings.from_env({}).release_window == DEFAULT_RELEASE_WINDOW
    assert TranscoderSettings.from_env({"TRANSCODER_RELEASE_WINDOW": "3"}).release_window == 3
    with pytest.raises(ValueError, match="TRANSCODER_RELEASE_WINDOW"):
        TranscoderSettings.from_env({"TRANSCODER_RELEASE_WINDOW": "0"})
