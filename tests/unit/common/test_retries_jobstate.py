"""The job-state KV entry across a retry: the terminal state that kept a job from running again gives way
to a marker of the generation that runs now, and a request of an older generation reads as superseded."""

from __future__ import annotations

from types import SimpleNamespace

from nats.js.errors import KeyNotFoundError

from mpr_common.events import JobCompleted
from mpr_common.jobstate import JobState


class KV:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def put(self, key, value) -> None:
        self.values[key] = value

    async def get(self, key):
        if key not in self.values:
            raise KeyNotFoundError()
        return SimpleNamespace(value=self.values[key])


async def test_a_retry_lets_its_generation_run_and_only_its_generation():
    state = JobState(KV())
    await state.failed("j")
    assert await state.get("j") == "failed"
    await state.retried("j", 2)
    assert await state.get("j") is None  # callers that name no generation: the job runs
    assert await state.get("j", 2) is None
    assert await state.get("j", 1) == "superseded"
    assert await state.get("j", 0) == "superseded"


async def test_the_retried_generation_ends_as_any_job_does():
    state = JobState(KV())
    await state.cancelled("j")
    await state.retried("j", 1)
    done = JobCompleted(job_id="j", output_key="o.mp4", output_bucket="out")
    await state.completed(done)
    assert await state.get("j", 1) == done and await state.get("j", 0) == done
