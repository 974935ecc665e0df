"""Faults of workers: a lost consumer, replicas killed (kill -9, SIGTERM) mid-job, a worker dying on every
delivery. (The broker and poison messages: test_faults_broker.py; storage and scanning:
test_faults_storage.py.)

The tests share one stack and leave it as they found it: each starts the transcoders its fault needs
under names of its own, every job it submits has ended when it returns, and the job queue's settings it
changes are restored (faults.job_queue)."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from nats.js.api import DeliverPolicy

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobRequested
from mpr_devstack.stack import Stack
from tests.system.conftest import wait_for
from tests.system.faults import (
    Replicas,
    client,
    completed_events,
    consumer_info,
    delete_consumer,
    job_queue,
    js_publish,
    long_source,
    output_objects,
    slow_s3,
    start_long_job,
    stream_events,
    upload_sample,
)
from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system


# The lease a transcoder killed mid-job leaves behind: the next delivery takes the job over once it has
# gone unrenewed this long (the default, 60 s, would only make these tests wait).
LEASE = {"TRANSCODER_LEASE_SECONDS": "8"}


@pytest.fixture(scope="module")
def st(make_shared_stack) -> Stack:
    return make_shared_stack(transcoders=0)


@pytest.fixture(scope="module")
def slow(st: Stack, media_dir) -> Iterator[dict[str, str]]:
    """The environment of a replica that runs the long job (faults.slow_s3)."""
    with slow_s3(st, media_dir) as env:
        yield env


@pytest.fixture
def replicas(st: Stack) -> Iterator[Replicas]:
    r = Replicas(st)
    yield r
    r.stop()


def job_total(api: httpx.Client) -> int:
    return api.get("/api/jobs", params={"limit": 1}).json()["total"]


def chunk_running_on(api: httpx.Client, parent_id: str, worker: str) -> str | None:
    """A chunk of ``parent_id`` that ``worker`` runs (its lease taken, its source being read over the
    slow link): one GET of the running jobs per look, not one per child (each costs the API and the
    catalog some milliseconds of CPU, ten times a second)."""
    for item in api.get("/api/jobs", params={"status": "running"}).json()["items"]:
        job = item["job"]
        if "-c0" in job["id"] and job["worker"] == worker:
            if job["id"] in api.get(f"/api/jobs/{parent_id}").json()["job"]["children"]:
                return job["id"]
    return None


def kill_a_chunk_runner(
    st: Stack, api: httpx.Client, replicas: Replicas, slow: dict[str, str], parent_id: str, name: str
) -> tuple[dict, dict]:
    """kill -9 the replica ``name``-killed (started before ``parent_id`` was submitted) once it runs a
    chunk of it, and start ``name``-successor. Returns the job's GET once it has ended and the chunk
    taken over, having checked: the job completed, the successor ran the chunk (its second attempt),
    every child completed once."""
    killed = replicas.started[-1]  # the replica the test started last
    assert killed.name == f"{name}-killed", killed.name
    chunk_id = wait_for(
        lambda: chunk_running_on(api, parent_id, f"{name}-killed"),
        timeout=60,
        interval=0.1,
        what="a chunk to run",
    )
    killed.popen.kill()  # SIGKILL: no NAK, no goodbye
    killed.popen.wait()
    replicas.start(f"{name}-successor", **LEASE, **slow)
    finished = wait_job(api, parent_id, timeout=180)
    done = finished["job"]
    assert done["status"] == "completed", done
    taken_over = api.get(f"/api/jobs/{chunk_id}").json()["job"]
    assert (taken_over["worker"], taken_over["attempts"]) == (f"{name}-successor", 2), taken_over
    for child_id in [done["id"], *done["children"]]:
        assert len(completed_events(st, child_id)) == 1, child_id
    return finished, taken_over


def test_kill_9_transcoder_mid_job_another_replica_finishes(st, replicas, slow, media_dir):
    api = client(st)
    jobs_before = job_total(api)
    killed = replicas.start("transcoder-killed", **LEASE, **slow)
    job_id = start_long_job(st, api, media_dir)
    killed.popen.kill()  # SIGKILL: no NAK, no goodbye
    killed.popen.wait()
    replicas.start("transcoder-successor", **LEASE, **slow)
    done = wait_job(api, job_id, timeout=120)["job"]
    assert done["status"] == "completed", done
    assert done["worker"] == "transcoder-successor" and done["attempts"] == 2
    assert output_objects(st, done) == [done["output_key"]]
    assert len(completed_events(st, job_id)) == 1
    assert job_total(api) == jobs_before + 1  # the takeover made no job of its own


def test_kill_9_mid_chunk_the_package_completes_with_every_segment_once(st, replicas, slow, media_dir):
    # The long job's source as a chunked package: each rung in chunks of 4 s (one segment, read in about
    # 3 s over the slow link) and 8 s, the killed replica's chunk taken over by the successor once its
    # lease runs out, and stitched once.
    api = client(st)
    replicas.start("transcoder-chunk-killed", **LEASE, **slow)
    key = upload_sample(st, media_dir, long_source(media_dir).name)
    package = api.post("/api/jobs", json={"kind": "package", "source_key": key, "chunk_seconds": 8}).json()[
        "job"
    ]
    finished, taken_over = kill_a_chunk_runner(st, api, replicas, slow, package["id"], "transcoder-chunk")
    done = finished["job"]
    objects = output_objects(st, done)
    assert not [k for k in objects if "-c0" in k.rsplit("/", 1)[1]], objects  # no chunk's own playlist left
    folder = done["output_key"].rsplit("/", 1)[0]
    rungs = [k for k in objects if k.endswith(".m3u8") and not k.endswith(("master.m3u8", "audio.m3u8"))]
    assert rungs, objects
    for rung in rungs:
        text = st.s3_client().get_object(Bucket="mpr-media-out", Key=rung)["Body"].read().decode()
        listed = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert len(listed) == len(set(listed)) == 3 and text.rstrip().endswith("#EXT-X-ENDLIST"), text
        assert all(f"{folder}/{name}" in objects for name in listed)
    # Quality survives the kill: the successor measured the chunk it took over, and every rung's
    # statistics cover all its frames (12 s at 5 fps)
    assert taken_over["quality"] and taken_over["quality"]["frames"] > 0, taken_over
    names = sorted(r.rsplit("/", 1)[1].removesuffix(".m3u8") for r in rungs)
    assert sorted(done["rendition_quality"]) == names, done["rendition_quality"]
    assert all(q["frames"] == 60 and q["psnr"]["mean"] > 25 for q in done["rendition_quality"].values())


def test_kill_9_mid_chunk_the_chunked_transcode_joins_every_frame_once(
    st, replicas, slow, media_dir, tmp_path
):
    # The long job's source (12 s at 5 fps) as a chunked transcode in chunks of 4 s: the killed replica's
    # chunk is taken over by the successor once its lease runs out, and the parts are joined once.
    api = client(st)
    replicas.start("transcoder-tc-killed", **LEASE, **slow)
    source = long_source(media_dir)
    key = upload_sample(st, media_dir, source.name)
    body = {"kind": "transcode", "source_key": key, "chunk_seconds": 4}
    transcode = api.post("/api/jobs", json=body).json()["job"]
    finished, _ = kill_a_chunk_runner(st, api, replicas, slow, transcode["id"], "transcoder-tc")
    done = finished["job"]
    # one MP4, no part left (the parts go right after the completion is recorded)
    wait_for(lambda: output_objects(st, done) == [done["output_key"]], 60, what="the parts removed")
    out = tmp_path / "joined.mp4"
    out.write_bytes(httpx.get(finished["output_url"], timeout=60).content)
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ]
        + [str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    times = sorted(round(float(t) * 5, 3) for t in probe.stdout.split())
    assert times == [float(i) for i in range(60)], "a frame lost or repeated at a join"


def test_sigterm_hands_unfinished_work_back_promptly(st, replicas, slow, media_dir):
    # ack_wait 60 s: if the job moves to the new replica within a few seconds, it was NAKed, not timed out.
    with job_queue(st, TRANSCODER_ACK_WAIT="60"):
        api = client(st)
        t1 = replicas.start("transcoder-stopped", TRANSCODER_SHUTDOWN_GRACE="10", **slow)
        job_id = start_long_job(st, api, media_dir)
        t0 = time.monotonic()
        t1.signal(signal.SIGTERM)
        rc = t1.popen.wait(15)
        exited_in = time.monotonic() - t0
        assert rc == 0 and exited_in < 10, (rc, exited_in)
        t_restart = time.monotonic()
        replicas.start("transcoder-next", TRANSCODER_SHUTDOWN_GRACE="10", **slow)
        wait_for(
            lambda: api.get(f"/api/jobs/{job_id}").json()["job"]["worker"] == "transcoder-next",
            timeout=30,
            what="job to move to the new replica",
        )
        assert time.monotonic() - t_restart < 30
        done = wait_job(api, job_id, timeout=120)["job"]
        assert done["status"] == "completed" and done["attempts"] == 2


def test_worker_dying_on_every_delivery_fails_the_job_after_max_deliver(st, replicas, slow, media_dir):
    with job_queue(st, TRANSCODER_MAX_DELIVER="2", TRANSCODER_ACK_WAIT="4"):
        api = client(st)
        replicas.start("transcoder-dying-1", **LEASE, **slow)
        job_id = start_long_job(st, api, media_dir, wait_progress=False)
        for n in (1, 2):
            name = f"transcoder-dying-{n}"
            wait_for(
                lambda n=n: (
                    (j := api.get(f"/api/jobs/{job_id}").json()["job"])["attempts"] == n and j["progress"] > 0
                ),
                what=f"delivery {n} to make progress",
            )
            st.services[name].popen.kill()
            st.services[name].popen.wait()
            # Kubernetes restarts the pod; JetStream notices the exhausted message when it would redeliver it.
            replicas.start(f"transcoder-dying-{n + 1}", **LEASE, **slow)
        done = wait_job(api, job_id, timeout=60)["job"]
        assert done["status"] == "failed" and "gave up after 2 deliveries" in done["error"], done
        dead = [e for e in stream_events(st.nats.url, s.DLQ_STREAM, s.DLQ_JOBS) if e.get("job_id") == job_id]
        assert len(dead) == 1 and dead[0]["deliveries"] == 2


# Last on the stack: the consumer is re-created from the oldest job that has not ended, so every job stored
# before must have ended (an undecodable message never does: test_faults_broker.py); and mpr-setup cannot
# update the re-created consumer afterwards (its deliver policy differs; nats-server refuses to change it).
def test_a_lost_consumer_fails_readiness_and_its_re_creation_runs_nothing_twice(st, replicas, media_dir):
    name = "transcoder-lost-consumer"
    replicas.start(name)
    api = client(st)
    key = upload_sample(st, media_dir)
    done_id = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key}).json()["job"]["id"]
    failed = JobRequested(
        job_id=uuid.uuid4().hex, kind="thumbnail", source_key=key, source_bucket="elsewhere"
    )
    js_publish(st.nats.url, s.JOB_REQUESTED, encode(failed), failed.job_id)
    assert wait_job(api, done_id)["job"]["status"] == "completed"
    assert wait_job(api, failed.job_id)["job"]["status"] == "failed"

    ops = f"http://127.0.0.1:{st.metrics_ports[name]}"
    wait_for(lambda: httpx.get(f"{ops}/health/ready").status_code == 200, 15, what="readiness")
    delete_consumer(st.nats.url, s.JOBS_STREAM, s.TRANSCODERS_DURABLE)
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
    st.setup_jetstream()  # the next deploy's setup updates the re-created consumer (its start is kept)
    again = consumer_info(st.nats.url, s.JOBS_STREAM, s.TRANSCODERS_DURABLE).config
    assert (again.deliver_policy, again.opt_start_seq) == (
        info.config.deliver_policy,
        info.config.opt_start_seq,
    )
    # The replayed jobs that had ended were not run again.
    assert api.get(f"/api/jobs/{done_id}").json()["job"]["attempts"] == 1
    assert api.get(f"/api/jobs/{failed.job_id}").json()["job"]["status"] == "failed"
    assert len(completed_events(st, done_id)) == 1
    assert not completed_events(st, failed.job_id)
    log = (st.workdir / "logs" / f"{name}.log").read_text()
    assert "not run again" not in log  # history was not delivered again at all
