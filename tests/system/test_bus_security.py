"""Least privilege on the bus: anonymous clients are refused, each identity may touch only its own
subjects, and only the setup identity may manage streams and consumers (real nats-server)."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import nats
import pytest
from nats.errors import Error as NatsError

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobCompleted, JobRequested, ObjectFound
from mpr_common.identities import JS_API, inbox_prefix
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system


async def _attempt(url: str, action) -> list[str]:
    """Run ``action(nc)`` connected at ``url``; returns the permission errors the server reported."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    user = urlsplit(url).username
    # As every MPR client does: replies to the identity's own inboxes, the only ones it may read.
    inbox = {"inbox_prefix": inbox_prefix(user)} if user else {}
    nc = await nats.connect(url, error_cb=on_error, max_reconnect_attempts=0, **inbox)
    try:
        try:
            await action(nc)
        except (NatsError, TimeoutError) as exc:  # refused requests time out or answer with an error
            errors.append(f"{type(exc).__name__}: {exc}")
        await nc.flush()
        await asyncio.sleep(0.1)
    finally:
        await nc.close()
    return errors


def attempt(url: str, action) -> list[str]:
    return asyncio.run(_attempt(url, action))


def refused(errors: list[str]) -> bool:
    """The server said no (a permissions violation), not merely that nobody answered."""
    return any("ermissions violation" in e.lower() or "permissions violation" in e for e in errors)


def test_anonymous_clients_are_refused(stack):
    async def connect():
        await nats.connect(
            stack.nats.address, max_reconnect_attempts=0, connect_timeout=2, allow_reconnect=False
        )

    with pytest.raises(Exception, match="(?i)authoriz"):
        asyncio.run(connect())


def test_the_publisher_identity_may_publish_job_requests_only(stack, api, s3, media_dir):
    url = stack.nats.url_as("publisher")
    key = f"publisher-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    job = JobRequested(job_id=uuid.uuid4().hex, kind="thumbnail", source_key=key, requested_by="team-x")

    async def publish_job(nc):
        ack = await nc.jetstream().publish(s.JOB_REQUESTED, encode(job), headers={"Nats-Msg-Id": job.job_id})
        assert ack.seq > 0

    assert attempt(url, publish_job) == []
    assert wait_job(api, job.job_id)["job"]["status"] == "completed"

    forged = JobCompleted(job_id=job.job_id, output_key="x.mp4", output_bucket="mpr-media-out")
    for action in (
        lambda nc: nc.jetstream().publish(s.JOB_COMPLETED, encode(forged), timeout=1),
        lambda nc: nc.jetstream().publish(
            s.OBJECT_FOUND, encode(ObjectFound(bucket="b", key="k.mp4")), timeout=1
        ),
        lambda nc: nc.subscribe(s.JOBS_ALL),
        lambda nc: nc.jetstream().delete_consumer(s.JOBS_STREAM, s.TRANSCODERS_DURABLE),
        lambda nc: nc.request(s.CATALOG_JOBS_LIST, b"{}", timeout=1),
    ):
        errors = attempt(url, action)
        assert any("ermission" in e or "Timeout" in e for e in errors), errors
    assert api.get(f"/api/jobs/{job.job_id}").json()["job"]["output_key"] != "x.mp4"


@pytest.mark.parametrize("identity", ["api", "catalog", "scanner", "transcoder", "publisher", "minio"])
def test_only_the_setup_identity_manages_streams_and_consumers(stack, identity):
    url = stack.nats.url_as(identity)
    for api_call in (
        f"CONSUMER.DELETE.{s.JOBS_STREAM}.{s.TRANSCODERS_DURABLE}",
        f"CONSUMER.CREATE.{s.JOBS_STREAM}.rogue",
        f"STREAM.DELETE.{s.JOBS_STREAM}",
        f"STREAM.PURGE.{s.JOBS_STREAM}",
        f"STREAM.UPDATE.{s.JOBS_STREAM}",
    ):
        errors = attempt(url, lambda nc, c=api_call: nc.request(f"{JS_API}.{c}", b"{}", timeout=0.3))
        assert refused(errors), (identity, api_call, errors)

    async def still_there(nc):
        info = await nc.jetstream().consumer_info(s.JOBS_STREAM, s.TRANSCODERS_DURABLE)
        assert info.name == s.TRANSCODERS_DURABLE

    assert attempt(stack.nats.url, still_there) == []


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        ("transcoder", s.OBJECT_FOUND),  # only the scanner finds objects
        ("scanner", s.JOB_COMPLETED),  # only transcoders (and the API for Lambda) complete jobs
        ("catalog", s.JOB_REQUESTED),
        ("minio", s.JOB_REQUESTED),
        ("publisher", s.JOB_CHILD),  # a package's children come only from the transcoder that planned it
        ("api", s.JOB_CHILD),
        ("transcoder", s.JOB_REQUESTED),
    ],
)
def test_services_cannot_publish_each_others_facts(stack, identity, subject):
    errors = attempt(stack.nats.url_as(identity), lambda nc: nc.request(subject, b"{}", timeout=0.3))
    assert refused(errors), errors
