"""The job state machine over rows (pure): any order of one run's events gives the same row, and the
first terminal state is never left."""

import itertools

import msgspec

from mpr_catalog.job_events import fold
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobPlayable,
    JobProgress,
    JobRequested,
    JobRetried,
)

REQ = JobRequested(job_id="j", kind="trim", source_key="a.mp4", start=1.0, preset="copy", requested_at=100.0)
EVENTS = [
    REQ,
    JobProgress(job_id="j", progress=20, worker="w1", at=101.0),
    JobProgress(job_id="j", progress=60, speed=3.0, worker="w1", at=102.0),
    JobCompleted(job_id="j", output_key="o.mp4", output_bucket="out", output_size=5, worker="w1", at=103.0),
]
STATE = (
    "status",
    "progress",
    "kind",
    "source_key",
    "preset",
    "output_key",
    "output_size",
    "error",
    "created_at",
)


def test_every_order_of_events_gives_the_same_row():
    results = set()
    for order in itertools.permutations(EVENTS):
        rows: dict = {}
        fold(rows, list(order), now=200.0)
        results.add(tuple(rows["j"][k] for k in STATE))
    assert results == {("completed", 100.0, "trim", "a.mp4", "copy", "o.mp4", 5, None, 100.0)}


def test_a_terminal_state_is_never_left():
    rows: dict = {}
    fold(rows, [*EVENTS, JobFailed(job_id="j", error="a dead replica's late report", at=104.0)])
    assert (rows["j"]["status"], rows["j"]["error"]) == ("completed", None)


def test_fold_reports_only_rows_that_changed():
    rows: dict = {}
    assert fold(rows, [REQ], now=1.0) == {"j"}
    assert fold(rows, [REQ, JobProgress(job_id="j", progress=0)], now=2.0) == {"j"}  # queued → running
    assert fold(rows, [JobProgress(job_id="j", progress=0)], now=3.0) == set()
    assert rows["j"]["updated_at"] == 2.0


def test_progress_is_clamped_and_never_drops():
    rows: dict = {}
    fold(rows, [JobProgress(job_id="p", progress=250), JobProgress(job_id="p", progress=-5)])
    assert rows["p"]["progress"] == 100.0 and rows["p"]["status"] == "running"


def test_cancel_reason_ends_cancelled():
    rows: dict = {}
    fold(rows, [REQ, JobFailed(job_id="j", error="cancelled by request", reason="cancelled")])
    assert (rows["j"]["status"], rows["j"]["failure_reason"]) == ("cancelled", "cancelled")


# --- playable: a package's earliest JobPlayable of its generation, else its completion ----------------
PKG = JobRequested(job_id="p", kind="package", source_key="a.mp4", requested_at=100.0)
PLAYABLE = JobPlayable(job_id="p", output_key="a/p/master.m3u8", output_bucket="out", at=104.0)
PKG_DONE = JobCompleted(job_id="p", output_key="a/p/master.m3u8", output_bucket="out", at=130.0)


def _playable(rows: dict) -> tuple:
    return rows["p"]["playable_at"], rows["p"]["playable_key"]


def test_a_package_is_playable_from_its_playable_event_in_any_order():
    results = set()
    for order in itertools.permutations(
        [PKG, JobProgress(job_id="p", progress=5, at=102.0), PLAYABLE, PKG_DONE]
    ):
        rows: dict = {}
        fold(rows, list(order), now=200.0)
        results.add((rows["p"]["status"], *_playable(rows)))
    assert results == {("completed", 104.0, "a/p/master.m3u8")}


def test_a_repeated_playable_event_changes_nothing():
    rows: dict = {}
    fold(rows, [PKG, PLAYABLE], now=105.0)
    assert fold(rows, [PLAYABLE, msgspec.structs.replace(PLAYABLE, at=110.0)], now=106.0) == set()
    assert _playable(rows) == (104.0, "a/p/master.m3u8") and rows["p"]["updated_at"] == 105.0


def test_an_older_generations_playable_event_is_ignored():
    rows: dict = {}
    fold(rows, [PKG, JobFailed(job_id="p", error="x", retry=0), JobRetried(job_id="p", retry=1)])
    assert fold(rows, [msgspec.structs.replace(PLAYABLE, retry=0)]) == set()
    assert _playable(rows) == (None, None) and rows["p"]["retries"] == 1
    fold(rows, [msgspec.structs.replace(PLAYABLE, retry=1, at=150.0)])
    assert _playable(rows) == (150.0, "a/p/master.m3u8")


def test_a_package_completed_without_one_is_playable_from_its_completion():
    for order in itertools.permutations([PKG, PKG_DONE]):
        rows: dict = {}
        fold(rows, list(order))
        assert _playable(rows) == (130.0, "a/p/master.m3u8")
    rows = {}
    fold(rows, EVENTS)  # not a package: nothing to play as one
    assert (rows["j"]["playable_at"], rows["j"]["playable_key"]) == (None, None)


def test_a_package_that_fails_or_is_cancelled_is_not_playable():
    for end in (JobFailed(job_id="p", error="boom", at=120.0), JobCancel(job_id="p", at=120.0)):
        for order in itertools.permutations([PKG, PLAYABLE, end]):
            rows: dict = {}
            fold(rows, list(order))
            assert _playable(rows) == (None, None), (end, order)
