"""Faults of the broker and of what it carries: a poison message, nats-server killed and restarted, a full
jobs stream. (Workers: test_faults.py; storage and scanning: test_faults_storage.py.)

The poison message and the restart share one stack (the restart, last, checks the stack works again
after it); a full stream is of no use to any other test and has a stack of its own."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats
import pytest

from mpr_common import subjects as s
from mpr_devstack.stack import Stack
from tests.system.conftest import wait_for, wait_job
from tests.system.faults import client, completed_events, consumer_info, stream_events, upload_sample

pytestmark = pytest.mark.system


# First: its stack is stopped before the shared one starts.
def test_a_full_jobs_stream_refuses_new_jobs_instead_of_dropping_accepted_ones(make_stack):
    st = make_stack(transcoders=0, MPR_JOBS_MAX_BYTES="8192")
    api = client(st)
    accepted: list[str] = []
    for i in range(200):
        r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": f"full/{i}.mp4"})
        if r.status_code != 202:
            assert r.status_code == 503, r.text
            break
        accepted.append(r.json()["job"]["id"])
    else:
        pytest.fail("the stream never filled up")
    assert len(accepted) >= 5
    stored = {e["job_id"] for e in stream_events(st.nats.url, s.JOBS_STREAM, s.JOB_REQUESTED)}
    assert set(accepted) <= stored  # every job answered 202 is still there


@pytest.fixture(scope="module")
def st(make_shared_stack) -> Stack:
    return make_shared_stack(transcoders=1)


def test_poison_message_is_dead_lettered_once(st):
    marker = uuid.uuid4().hex  # other tests' dead letters share the stream

    async def publish():
        nc = await nats.connect(st.nats.url)
        try:
            await nc.jetstream().publish(s.JOB_REQUESTED, b'{"kind": 42, "oops": "%s"}' % marker.encode())
        finally:
            await nc.close()

    asyncio.run(publish())
    dead = wait_for(
        lambda: [e for e in stream_events(st.nats.url, s.DLQ_STREAM, s.DLQ_JOBS) if marker in e["payload"]],
        what="dead letter",
    )
    assert len(dead) == 1 and "undecodable" in dead[0]["error"]
    info = wait_for(
        lambda: (
            (i := consumer_info(st.nats.url, s.JOBS_STREAM, s.TRANSCODERS_DURABLE)).num_ack_pending == 0 and i
        ),
        what="ack",
    )
    assert info.num_redelivered == 0


# Last on its stack: the broker is killed; what follows the restart is checked here.
def test_nats_restart_loses_no_job_and_duplicates_run_once(st, media_dir):
    api = client(st)
    key = upload_sample(st, media_dir)
    ids = [f"restart-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    for job_id in ids[:2]:
        assert (
            api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "job_id": job_id}).status_code
            == 202
        )
    st.nats.kill()  # kill -9 the broker with jobs in flight
    time.sleep(1)
    r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "job_id": ids[2]})
    assert r.status_code == 503 and "unavailable" in r.json()["detail"]  # refused, not silently lost
    st.nats.start()  # same port, same file store
    for job_id in ids[2:]:
        wait_for(
            lambda j=job_id: (
                api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "job_id": j}).status_code
                in (200, 202)
            ),
            what="api to publish again after the restart",
        )
    # A client retries every job after the outage: duplicates are dropped by job_id.
    for job_id in ids:
        assert (
            api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "job_id": job_id}).status_code
            == 200
        )
    for job_id in ids:
        done = wait_job(api, job_id, timeout=120)["job"]
        assert done["status"] == "completed", done
        assert len(completed_events(st, job_id)) == 1
    requested = [
        e for e in stream_events(st.nats.url, s.JOBS_STREAM, s.JOB_REQUESTED) if e.get("job_id") in ids
    ]
    assert sorted(e["job_id"] for e in requested) == sorted(ids)
