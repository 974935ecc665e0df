"""Least privilege on the bus: anonymous clients are refused, each identity may touch only its own
subjects and read only its own replies, only the setup identity may manage streams and consumers, and
webhook secrets are not stored in clear (real nats-server, the whole system running)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import nats
import pytest
from nats.errors import Error as NatsError

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobCompleted, JobRequested, ObjectFound
from mpr_common.identities import IDENTITIES, INBOX_ROOT, JS_API, inbox_prefix
from mpr_devstack.stack import DEV_API_TOKEN
from tests.system.bus_clients import Client, connect_as
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
        ("api", s.JOB_PLAYABLE),  # only the transcoder writing a package's playlists says it plays
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


# --- the running system: nobody else reads its replies -------------------------------------------
def test_outside_identities_cannot_read_the_services_replies(stack, s3, media_dir):
    """While the API, the catalog, the scanner and the transcoders exchange requests, acks, pulls and KV
    reads, ``publisher`` and ``minio`` subscribed to every inbox they can name receive none of it (and
    the setup owner, subscribed to everything, shows that there was plenty to receive)."""
    key = f"inboxes-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    identities = [n for n in IDENTITIES if n not in ("setup", "minio")]
    received: dict[str, list[str]] = {"publisher": [], "minio": [], "setup": []}

    async def run() -> None:
        def keep(name: str) -> Callable[[object], Awaitable[None]]:
            async def cb(msg) -> None:
                received[name].append(msg.subject)

            return cb

        publisher = await connect_as(stack.nats.url_as("publisher"), "publisher")
        minio = await Client().connect(stack.nats.url_as("minio"), None)  # as MinIO: nats.go's inbox
        setup = await connect_as(stack.nats.url, "setup")
        try:
            assert publisher.nc and minio.nc and setup.nc
            for x in [f"{INBOX_ROOT}.>", *(f"{inbox_prefix(n)}.>" for n in identities if n != "publisher")]:
                await publisher.nc.subscribe(x, cb=keep("publisher"))
            for x in [f"{INBOX_ROOT}.>", *(f"{inbox_prefix(n)}.>" for n in identities)]:
                await minio.nc.subscribe(x, cb=keep("minio"))
            await setup.nc.subscribe(f"{INBOX_ROOT}.>", cb=keep("setup"))
            await setup.nc.flush()

            async with httpx.AsyncClient(
                base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
            ) as api:
                hook = await api.post(
                    "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "types": ["job.completed"]}
                )
                assert hook.status_code == 201, hook.text
                job = await api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key})
                assert job.status_code in (200, 201, 202), job.text
                job_id = job.json()["job"]["id"]
                with httpx.Client(base_url=stack.api_url, headers=api.headers, timeout=60) as sync_api:
                    await asyncio.to_thread(wait_job, sync_api, job_id)
                assert (await api.get("/api/jobs")).status_code == 200  # the catalog answers
                assert (await api.get("/api/webhooks")).status_code == 200  # KV reads
                scan = await api.post("/api/assets/scan", json={"prefix": key.split("/")[0]})
                assert scan.status_code == 200, scan.text  # the scanner's chunks
                await api.delete(f"/api/webhooks/{hook.json()['webhook']['id']}")

            refused_pub = await publisher.refused({("subscribe", f"{INBOX_ROOT}.>")})
            refused_minio = await minio.refused({("subscribe", f"{inbox_prefix('api')}.>")})
        finally:
            for c in (publisher, minio, setup):
                await c.close()
        assert {x for op, x in refused_pub if op == "subscribe"} >= {
            f"{INBOX_ROOT}.>".lower(),
            *(f"{inbox_prefix(n)}.>".lower() for n in identities if n != "publisher"),
        }
        assert {x for op, x in refused_minio if op == "subscribe"} >= {
            f"{inbox_prefix(n)}.>".lower() for n in identities
        }
        seen_by_setup = {subj.split(".")[1] for subj in received["setup"]}
        assert {"api", "catalog", "transcoder", "scanner"} <= seen_by_setup, seen_by_setup
        assert received["publisher"] == []
        claimed = tuple(f"{inbox_prefix(n)}." for n in IDENTITIES)
        assert [x for x in received["minio"] if x.startswith(claimed)] == []

    asyncio.run(run())


def test_a_webhook_secret_is_not_stored_in_clear(stack, api):
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "types": ["job.completed"]})
    assert created.status_code == 201, created.text
    sub_id, secret = created.json()["webhook"]["id"], created.json()["secret"]
    rotated = api.post(f"/api/webhooks/{sub_id}/rotate-secret")

    async def raw() -> bytes:
        nc = await nats.connect(stack.nats.url, inbox_prefix=inbox_prefix("setup"))
        try:
            kv = await nc.jetstream().key_value(s.WEBHOOKS_KV)
            return (await kv.get(sub_id)).value or b""
        finally:
            await nc.close()

    try:
        stored = asyncio.run(raw())
        assert stored and sub_id.encode() in stored
        clear = [secret] + ([rotated.json()["secret"]] if rotated.status_code in (200, 201) else [])
        for value in clear:
            key = value.removeprefix("whsec_")
            assert value.encode() not in stored and key.encode() not in stored
            assert base64.b64decode(key) not in stored
    finally:
        api.delete(f"/api/webhooks/{sub_id}")


def test_the_services_are_never_refused_a_subscription_of_their_own(stack, api):
    """Every service reads its replies under its own inbox prefix, FastStream's pull subscriptions (the
    catalog's advisories, the scanner's MinIO events) included: the server never had to refuse one."""
    api.get("/api/jobs", params={"limit": 1}).raise_for_status()  # the catalog has answered by now
    log = (stack.workdir / "logs" / "nats-server.log").read_text(errors="replace")
    refused = [
        line
        for line in log.splitlines()
        # (other tests here try forbidden publishes and subscriptions as these identities on purpose)
        if "Subscription Violation" in line
        and f'Subject "{INBOX_ROOT}.' in line
        and any(f"user:{name}" in line for name in ("api", "catalog", "scanner", "transcoder"))
    ]
    assert refused == []
