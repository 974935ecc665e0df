"""The job state machine over rows (pure): any order of one run's events gives the same row, and the
first terminal state is never left."""

import itertools

from mpr_catalog.job_events import fold
from mpr_common.events import JobCompleted, JobFailed, JobProgress, JobRequested

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
