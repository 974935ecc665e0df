"""Faults of workers and the broker: replicas killed, nats-server restarted, poison messages, SIGTERM,
a lost consumer, a full stream. (Storage and scanning: test_faults_storage.py.)"""

from __future__ import annotations

import signal
import time
import uuid

import httpx
import pytest
from nats.js.api import DeliverPolicy

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobRequested
from tests.system.conftest import wait_for, wait_job
from tests.system.faults import (
    client,
    completed_events,
    consumer_info,
    delete_consumer,
    js_publish,
    output_objects,
    start_long_job,
    stream_events,
    upload_sample,
)

pytestmark = pytest.mark.system


# The lease a transcoder killed mid-job leaves behind: the next delivery takes the job over once it has
# gone unrenewed this long (the default, 60 s, would only make these tests wait).
LEASE = {"TRANSCODER_LEASE_SECONDS": "8"}


def test_kill_9_transcoder_mid_job_another_replica_finishes(make_stack, media_dir):
    st = make_stack(transcoders=1, **LEASE)
    api = client(st)
    job_id = start_long_job(st, api, media_dir)
    st.services["transcoder-1"].popen.kill()  # SIGKILL: no NAK, no goodbye
    st.services["transcoder-1"].popen.wait()
    st.start_service("transcoder", "transcoder-2")
    done = wait_job(api, job_id, timeout=120)["job"]
    assert done["status"] == "completed", done
    assert done["worker"] == "transcoder-2" and done["attempts"] == 2
    assert output_objects(st, done) == [done["output_key"]]
    assert len(completed_events(st, job_id)) == 1
    assert api.get("/api/jobs", params={"limit": 1000}).json()["total"] == 1


def test_nats_restart_loses_no_job_and_duplicates_run_once(make_stack, media_dir):
    st = make_stack(transcoders=1)
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
    requested = [e for e in stream_events(st.nats.url, s.JOBS_STREAM, s.JOB_REQUESTED) if e["job_id"] in ids]
    assert sorted(e["job_id"] for e in requested) == sorted(ids)


def test_poison_message_is_dead_lettered_once(make_stack):
    import asyncio

    import nats

    st = make_stack(transcoders=1)

    async def publish():
        nc = await nats.connect(st.nats.url)
        try:
            await nc.jetstream().publish(s.JOB_REQUESTED, b'{"kind": 42, "oops": true}')
        finally:
            await nc.close()

    asyncio.run(publish())
    dead = wait_for(lambda: stream_events(st.nats.url, s.DLQ_STREAM, s.DLQ_JOBS), what="dead letter")
    assert len(dead) == 1 and '"oops": true' in dead[0]["payload"] and "undecodable" in dead[0]["error"]
    info = wait_for(
        lambda: (
            (i := consumer_info(st.nats.url, s.JOBS_STREAM, s.TRANSCODERS_DURABLE)).num_ack_pending == 0 and i
        ),
        what="ack",
    )
    assert info.num_redelivered == 0


def test_sigterm_hands_unfinished_work_back_promptly(make_stack, media_dir):
    # ack_wait 60 s: if the job moves to the new replica within a few seconds, it was NAKed, not timed out.
    st = make_stack(transcoders=1, TRANSCODER_ACK_WAIT="60", TRANSCODER_SHUTDOWN_GRACE="10")
    api = client(st)
    job_id = start_long_job(st, api, media_dir)
    t1 = st.services["transcoder-1"]
    t0 = time.monotonic()
    t1.signal(signal.SIGTERM)
    rc = t1.popen.wait(15)
    exited_in = time.monotonic() - t0
    assert rc == 0 and exited_in < 10, (rc, exited_in)
    t_restart = time.monotonic()
    st.start_service("transcoder", "transcoder-2")
    wait_for(
        lambda: api.get(f"/api/jobs/{job_id}").json()["job"]["worker"] == "transcoder-2",
        timeout=30,
        what="job to move to the new replica",
    )
    assert time.monotonic() - t_restart < 30
    done = wait_job(api, job_id, timeout=120)["job"]
    assert done["status"] == "completed" and done["attempts"] == 2


def test_worker_dying_on_every_delivery_fails_the_job_after_max_deliver(make_stack, media_dir):
    st = make_stack(transcoders=1, TRANSCODER_MAX_DELIVER="2", TRANSCODER_ACK_WAIT="4", **LEASE)
    api = client(st)
    job_id = start_long_job(st, api, media_dir, wait_progress=False)
    for n in (1, 2):
        name = f"transcoder-{n}"
        wait_for(
            lambda n=n: (
                (j := api.get(f"/api/jobs/{job_id}").json()["job"])["attempts"] == n and j["progress"] > 0
            ),
            what=f"delivery {n} to make progress",
        )
        st.services[name].popen.kill()
        st.services[name].popen.wait()
        # Kubernetes restarts the pod; JetStream notices the exhausted message when it would redeliver it.
        st.start_service("transcoder", f"transcoder-{n + 1}")
    done = wait_job(api, job_id, timeout=60)["job"]
    assert done["status"] == "failed" and "gave up after 2 deliveries" in done["error"], done
    dead = [e for e in stream_events(st.nats.url, s.DLQ_STREAM, s.DLQ_JOBS) if e.get("job_id") == job_id]
    assert len(dead) == 1 and dead[0]["deliveries"] == 2


def test_a_lost_consumer_fails_readiness_and_its_re_creation_runs_nothing_twice(make_stack, media_dir):
    st = make_stack(transcoders=1)
    api = client(st)
    key = upload_sample(st, media_dir)
    done_id = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key}).json()["job"]["id"]
    failed = JobRequested(
        job_id=uuid.uuid4().hex, kind="thumbnail", source_key=key, source_bucket="elsewhere"
    )
    js_publish(st.nats.url, s.JOB_REQUESTED, encode(failed), failed.job_id)
    assert wait_job(api, done_id)["job"]["status"] == "completed"
    assert wait_job(api, failed.job_id)["job"]["status"] == "failed"

    delete_consumer(st.nats.url, s.JOBS_STREAM, s.TRANSCODERS_DURABLE)
    ops = f"http://127.0.0.1:{st.metrics_ports['transcoder-1']}"
    wait_for(lambda: httpx.get(f"{ops}/health/ready").status_code == 503, 15, what="readiness to fail")
    assert (
        'mpr_jetstream_consumer_present{consumer="transcoders",stream="MPR_JOBS"} 0.0'
        in httpx.get(f"{ops}/metrics").text
    )
    queued = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "start": 1}).json()["job"][
        "id"
    ]

    st.setup_jetstream()  # the owner re-creates it, from the oldest job that has not ended
    info = consumer_info(st.nats.url, s.JOBS_STREAM, s.TRANSCODERS_DURABLE)
    assert (
        info.config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE and (info.config.opt_start_seq or 0) > 2
    )
    wait_for(lambda: httpx.get(f"{ops}/health/ready").status_code == 200, 15, what="readiness to recover")
    assert wait_job(api, queued)["job"]["status"] == "completed"
    # The replayed jobs that had ended were not run again.
    assert api.get(f"/api/jobs/{done_id}").json()["job"]["attempts"] == 1
    assert api.get(f"/api/jobs/{failed.job_id}").json()["job"]["status"] == "failed"
    assert len(completed_events(st, done_id)) == 1
    assert not completed_events(st, failed.job_id)
    log = (st.workdir / "logs" / "transcoder-1.log").read_text()
    assert "not run again" not in log  # history was not delivered again at all


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
