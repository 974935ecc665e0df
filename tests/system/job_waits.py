"""Waiting for a job to end on its event stream (GET /api/events) instead of polling its state: a poll costs
the API and the test about 5 ms of CPU, four times a second for as long as the job runs, where the stream
costs nothing while it is silent."""

from __future__ import annotations

import json
import time

import httpx

from tests.system.conftest import wait_for
from tests.system.conftest import wait_job as poll_job

ENDED = ("completed", "failed", "cancelled")
ENDED_EVENTS = ",".join(f"job.{state}" for state in ENDED)


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """What conftest's ``wait_job`` returns (the job's GET once it has ended), looked up when the stream
    tells of its end, and at each keep-alive (15 s of silence) in case the stream missed it."""
    deadline = time.monotonic() + timeout

    def ended() -> dict | None:
        r = api.get(f"/api/jobs/{job_id}")
        return r.json() if r.status_code == 200 and r.json()["job"]["status"] in ENDED else None

    params = {"job_id": job_id, "types": ENDED_EVENTS}
    with api.stream("GET", "/api/events", params=params) as stream:
        assert stream.status_code == 200, stream.read()
        lines = stream.iter_lines()
        next(lines)  # the stream's first line ("retry:") is written once it is subscribed: no end is missed
        if done := ended():
            return done
        for line in lines:
            told = line.startswith("data:") and json.loads(line.partition(":")[2])["job_id"] == job_id
            if told or line.startswith(":"):  # its end (its children's share the stream), a keep-alive
                # the job's state follows its event within moments
                left = deadline - time.monotonic()
                if told:
                    return wait_for(ended, max(left, 5), interval=0.1, what=f"job {job_id}'s end")
                if done := ended():
                    return done
            assert time.monotonic() < deadline, f"timed out waiting for job {job_id} to end"
    # the API ended the stream (it does when it sheds a slow reader): poll for what time is left
    return poll_job(api, job_id, max(deadline - time.monotonic(), 5))
