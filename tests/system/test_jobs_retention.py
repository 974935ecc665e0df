"""MPR_JOBS never drops a job request before its job has ended (a paused or unconsumed class waits as long
as it must); job events expire by a TTL of their own; the request of an ended job is retired
(mpr_common.streams.retire_ended_requests). Against a real nats-server with MPR's setup."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, connect, publish_event
from mpr_common.codec import encode
from mpr_common.events import JobCompleted, JobProgress, JobRequested
from mpr_common.identities import generate_passwords
from mpr_common.jobstate import JobState
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import (
    DAY,
    JOB_EVENT_TTL,
    REQUEST_RETIRE_AGE,
    REQUEST_SUBJECTS,
    ensure_streams,
    message_ttl,
    retire_ended_requests,
    setup_jetstream,
    stream_configs,
)
from mpr_devstack.servers import NatsServer

pytestmark = pytest.mark.system

DEADLINE = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NatsServer(tmp_path_factory.mktemp("retention")).start()
    yield srv
    srv.stop()


@pytest.fixture
async def js(server):
    nc = await connect(NatsSettings(url=server.url), "test-retention")
    js = nc.jetstream()
    await setup_jetstream(js, NatsSettings(), JobQueueSettings())
    yield js
    await js.purge_stream(s.JOBS_STREAM)
    await nc.close()


async def _request(js, priority: str = "bulk") -> tuple[str, int]:
    job_id = uuid.uuid4().hex
    job = JobRequested(job_id=job_id, kind="thumbnail", source_key="a.mp4", priority=priority)
    ack = await publish_event(js, s.requested_subject(priority), job, msg_id=job_id)
    return job_id, ack.seq


async def _stored(js, seq: int) -> bool:
    try:
        await js.get_msg(s.JOBS_STREAM, seq)
        return True
    except NotFoundError:
        return False


def test_requests_have_no_age_limit_and_events_one_of_their_own():
    assert all(message_ttl(x) is None for x in REQUEST_SUBJECTS)
    for event in (s.JOB_PROGRESS, s.JOB_COMPLETED, s.JOB_FAILED, s.JOB_CANCEL, s.JOB_ATTEMPT, s.JOB_MOVED):
        assert message_ttl(event) == JOB_EVENT_TTL
    assert message_ttl(s.OBJECT_FOUND) is None and message_ttl(f"$KV.{s.JOB_STATE_KV}.x") is None
    # the job-state entry that proves an end outlives the age at which the request is retired
    assert REQUEST_RETIRE_AGE < 14 * DAY


async def test_the_jobs_stream_keeps_requests_until_retired_and_events_for_their_ttl(js):
    cfg = (await js.stream_info(s.JOBS_STREAM)).config
    assert not cfg.max_age and cfg.allow_msg_ttl

    _, request_seq = await _request(js)  # into a class nobody consumes here
    event = await publish_event(js, s.JOB_PROGRESS, JobProgress(job_id="j", progress=1.0))
    assert (await js.get_msg(s.JOBS_STREAM, event.seq)).headers["Nats-TTL"] == str(int(JOB_EVENT_TTL))
    assert "Nats-TTL" not in ((await js.get_msg(s.JOBS_STREAM, request_seq)).headers or {})

    # With a short TTL an event goes, and the request published before it stays.
    short = await js.publish(s.JOB_PROGRESS, encode(JobProgress(job_id="j", progress=2.0)), msg_ttl=1)
    end = time.monotonic() + DEADLINE
    while await _stored(js, short.seq):
        assert time.monotonic() < end, "the event outlived its TTL"
        await asyncio.sleep(0.2)
    assert await _stored(js, request_seq)


async def test_a_stream_without_message_ttls_still_takes_events(tmp_path):
    """Before mpr-setup has enabled TTLs (or on NATS < 2.11), events are stored without one."""
    old = NatsServer(tmp_path / "js").start()
    try:
        nc = await connect(NatsSettings(url=old.url), "old-setup")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=s.JOBS_STREAM, subjects=[s.JOBS_ALL], storage=StorageType.FILE))
        ack = await js.publish(s.JOB_PROGRESS, encode(JobProgress(job_id="j", progress=1.0)))
        assert ack.seq == 1 and js._acks.ttl_refused
        assert "Nats-TTL" not in ((await js.get_msg(s.JOBS_STREAM, 1)).headers or {})
        await nc.close()
    finally:
        old.stop()


async def test_only_the_requests_of_ended_jobs_are_retired_once_old_enough(js):
    state = JobState(await js.key_value(s.JOB_STATE_KV))
    ended, ended_seq = await _request(js, "bulk")
    waiting, waiting_seq = await _request(js, "bulk")
    cancelled, cancelled_seq = await _request(js, "urgent")
    await state.completed(JobCompleted(job_id=ended, output_key="o.jpg", output_bucket="b"))
    await state.cancelled(cancelled)
    undecodable = await js.publish(s.requested_subject("normal"), b"{not json", headers={MSG_ID: "bad"})

    # Young: nothing is retired, ended or not.
    assert await retire_ended_requests(js) == 0
    # Past the retirement age: the ended, the cancelled and the undecodable go; the waiting one stays.
    later = time.time() + REQUEST_RETIRE_AGE + 60
    assert await retire_ended_requests(js, up_to=cancelled_seq - 1, now=later) == 1  # not past up_to
    assert await retire_ended_requests(js, now=later) == 2
    assert not await _stored(js, ended_seq) and not await _stored(js, cancelled_seq)
    assert not await _stored(js, undecodable.seq)
    assert await _stored(js, waiting_seq)
    # … however old it gets, until its job ends.
    assert await retire_ended_requests(js, now=time.time() + 365 * DAY) == 0
    assert await _stored(js, waiting_seq)
    await state.failed(waiting)
    assert await retire_ended_requests(js, now=time.time() + 365 * DAY) == 1
    assert not await _stored(js, waiting_seq)


async def test_the_catalog_identity_may_retire_requests(tmp_path):
    """With the rendered authorization: the catalog reads the requests, the job-state KV and its
    consumer's ack floor, and deletes (nothing else may, but setup)."""
    passwords = generate_passwords()
    srv = NatsServer(tmp_path / "js", passwords=passwords).start()
    try:
        admin = await connect(NatsSettings(url=srv.address, user="setup", password=passwords["setup"]), "s")
        await setup_jetstream(admin.jetstream(), NatsSettings(), JobQueueSettings())
        job_id, seq = await _request(admin.jetstream(), "normal")
        await JobState(await admin.jetstream().key_value(s.JOB_STATE_KV)).failed(job_id)
        catalog = await connect(
            NatsSettings(url=srv.address, user="catalog", password=passwords["catalog"]), "c"
        )
        later = time.time() + REQUEST_RETIRE_AGE + 60
        assert await retire_ended_requests(catalog.jetstream(), now=later) == 1
        assert not await _stored(admin.jetstream(), seq)
        # what the catalog's hourly round reads first, with the same rights
        info = await catalog.jetstream().consumer_info(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE)
        assert info.ack_floor is not None
        await catalog.close()
        await admin.close()
    finally:
        srv.stop()


async def test_mpr_setup_lifts_the_age_limit_of_a_stream_made_before(tmp_path):
    old = NatsServer(tmp_path / "js").start()
    try:
        nc = await connect(NatsSettings(url=old.url), "upgrade")
        js = nc.jetstream()
        before = next(c for c in stream_configs() if c.name == s.JOBS_STREAM)
        await js.add_stream(replace(before, max_age=14 * DAY, allow_msg_ttl=None))
        await ensure_streams(js)
        cfg = (await js.stream_info(s.JOBS_STREAM)).config
        assert not cfg.max_age and cfg.allow_msg_ttl
        await nc.close()
    finally:
        old.stop()
