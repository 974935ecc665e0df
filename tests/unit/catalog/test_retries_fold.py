"""Retries in the job state machine (pure): a retry starts a new generation of the job, the row describes
the newest generation seen whatever order the events arrive in, and a late event of an older generation
never changes it. Queue classes: the latest move wins over the request's class."""

import itertools

import msgspec

from mpr_catalog.job_events import fold
from mpr_common.codec import decode
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobMoved,
    JobProgress,
    JobRequested,
    JobRetried,
)

REQ = JobRequested(
    job_id="j",
    kind="audio",
    source_key="a.mp4",
    preset="aac",
    requested_at=100.0,
    template="podcast@3",
    rule="r1",
)
RETRIED = msgspec.structs.replace(REQ, retry=1)
FIRST_RUN = [
    REQ,
    JobProgress(job_id="j", progress=40, worker="w1", at=101.0, retry=0),
    JobFailed(job_id="j", error="source is not readable media", reason="source", at=102.0, retry=0),
]
SECOND_RUN = [
    JobRetried(job_id="j", retry=1, at=110.0),
    RETRIED,
    JobProgress(job_id="j", progress=70, worker="w2", at=111.0, retry=1),
    JobCompleted(job_id="j", output_key="o.m4a", output_bucket="out", output_size=7, at=112.0, retry=1),
]
STATE = (
    "status",
    "retries",
    "progress",
    "error",
    "failure_reason",
    "output_key",
    "output_size",
    "finished_at",
    "created_at",
    "template",
    "rule",
    "priority",
)


def row_after(events, rows=None) -> dict:
    rows = {} if rows is None else rows
    fold(rows, list(events), now=500.0)
    return rows["j"]


def state(row: dict) -> tuple:
    return (*(row[k] for k in STATE), decode(row["request_json"], JobRequested).retry)


def test_every_order_of_a_failed_run_and_its_retry_gives_the_retried_outcome():
    results = {state(row_after(order)) for order in itertools.permutations(FIRST_RUN + SECOND_RUN)}
    assert results == {
        ("completed", 1, 100.0, None, None, "o.m4a", 7, 112.0, 100.0, "podcast@3", "r1", "normal", 1)
    }


def test_every_order_of_a_retry_that_failed_again_keeps_the_second_failure():
    second_failure = [
        JobRetried(job_id="j", retry=1, at=110.0),
        RETRIED,
        JobFailed(job_id="j", error="still broken", reason="ffmpeg", at=113.0, retry=1),
    ]
    results = {
        (r["status"], r["retries"], r["error"], r["failure_reason"], r["finished_at"])
        for order in itertools.permutations(FIRST_RUN + second_failure)
        for r in [row_after(order)]
    }
    assert results == {("failed", 1, "still broken", "ffmpeg", 113.0)}


def test_a_retry_seen_before_the_failure_it_retries_is_not_undone_by_it():
    row = row_after([REQ, JobRetried(job_id="j", retry=1), *FIRST_RUN[1:]])
    assert (row["status"], row["retries"], row["error"], row["progress"]) == ("queued", 1, None, 0.0)


def test_a_retry_restarts_the_run_and_forgets_its_outcome():
    row = row_after([*FIRST_RUN, JobRetried(job_id="j", retry=1)])
    assert (row["status"], row["retries"], row["error"], row["failure_reason"]) == ("queued", 1, None, None)
    assert (row["progress"], row["worker"], row["finished_at"], row["started_at"]) == (0.0, None, None, None)
    assert row["source_key"] == "a.mp4" and row["created_at"] == 100.0  # the request stays


def test_a_redelivered_retry_applies_once():
    rows: dict = {}
    row_after([*FIRST_RUN, *SECOND_RUN[:2]], rows)
    failed_again = JobFailed(job_id="j", error="again", reason="ffmpeg", retry=1)
    assert fold(rows, [failed_again], now=600.0) == {"j"}
    assert fold(rows, [JobRetried(job_id="j", retry=1, at=110.0), RETRIED], now=700.0) == set()
    assert (rows["j"]["status"], rows["j"]["error"]) == ("failed", "again")


def test_late_events_of_an_older_generation_change_nothing():
    rows: dict = {}
    row_after([*FIRST_RUN, *SECOND_RUN], rows)
    late = [
        JobProgress(job_id="j", progress=99, worker="w1", retry=0),
        JobFailed(job_id="j", error="late", reason="timeout", retry=0),
        JobCancel(job_id="j", retry=0),
        JobRetried(job_id="j", retry=1),
        REQ,
    ]
    assert fold(rows, late, now=900.0) == set()
    assert rows["j"]["status"] == "completed"


def test_a_cancel_of_the_retried_generation_stops_it_and_an_older_one_does_not():
    row = row_after([*FIRST_RUN, *SECOND_RUN[:2], JobCancel(job_id="j", retry=0)])
    assert row["status"] == "queued"
    row = row_after([*FIRST_RUN, *SECOND_RUN[:2], JobCancel(job_id="j", retry=1)])
    assert (row["status"], row["failure_reason"]) == ("cancelled", "cancelled")


def test_events_that_name_no_generation_belong_to_the_current_one():
    """Publishers from before retries (retry=None): in stream order, the retried run is recorded."""
    legacy = [
        REQ,
        JobFailed(job_id="j", error="bad source", reason="source"),
        JobRetried(job_id="j", retry=1),
        RETRIED,
        JobProgress(job_id="j", progress=50),
        JobCompleted(job_id="j", output_key="o.m4a", output_bucket="out"),
    ]
    row = row_after(legacy)
    assert (row["status"], row["retries"], row["output_key"]) == ("completed", 1, "o.m4a")


def test_the_newest_generations_request_is_recorded_in_any_order():
    for order in itertools.permutations([REQ, RETRIED, JobRetried(job_id="j", retry=1)]):
        row = row_after(order)
        assert decode(row["request_json"], JobRequested) == RETRIED
        assert (row["created_at"], row["retries"], row["status"]) == (100.0, 1, "queued")


def test_the_latest_move_sets_the_queue_class_in_any_order():
    events = [
        REQ,
        JobMoved(job_id="j", priority="urgent", at=105.0),
        JobMoved(job_id="j", priority="bulk", at=107.0),
        JobRetried(job_id="j", retry=1),
        RETRIED,
    ]
    assert {row_after(order)["priority"] for order in itertools.permutations(events)} == {"bulk"}


def test_the_request_sets_the_queue_class_until_a_move():
    urgent = msgspec.structs.replace(REQ, priority="urgent")
    assert row_after([urgent])["priority"] == "urgent"
    assert row_after([JobMoved(job_id="j", priority="bulk", at=1.0), urgent])["priority"] == "bulk"
