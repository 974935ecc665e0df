"""Only the API's retry path starts a new generation of a job: it marks the generation in the job-state
KV before it publishes the request. A request of a generation nobody marked (a made-up ``retry``
published straight onto NATS) is not run by a transcoder: it reads as superseded, as an older one does."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.events import JobCompleted
from mpr_common.jobstate import JobState
from tests.fakes import FakeKV


async def test_a_request_of_a_generation_no_retry_started_does_not_run():
    state = JobState(FakeKV())
    assert await state.get("new", 0) is None  # a new job runs
    assert await state.get("new", 3) == "superseded"  # a new job claiming to be a retry does not
    await state.retried("j", 1)  # POST /api/jobs/j/retry
    assert await state.get("j", 1) is None
    assert await state.get("j", 0) == "superseded" and await state.get("j", 7) == "superseded"
    done = JobCompleted(job_id="j", output_key="o.mp4", output_bucket="b", retry=1)
    await state.completed(done)
    assert await state.get("j", 7) == done  # ended: never run again, whatever generation is asked


@settings(max_examples=50, deadline=None)
@given(marked=st.integers(0, 20), asked=st.integers(0, 20))
def test_only_the_marked_generation_runs(marked, asked):
    async def verdict() -> object:
        state = JobState(FakeKV())
        if marked:
            await state.retried("j", marked)
        return await state.get("j", asked)

    got = asyncio.run(verdict())
    assert (got is None) is (asked == marked)
    assert got in (None, "superseded")
