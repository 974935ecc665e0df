"""Webhooks in process over a real nats-server (its streams, KV bucket and consumers made by
mpr-setup's code, the API connected as its own NATS identity) and a real HTTP receiver on loopback:
the REST and GraphQL surface, delivery with signatures a receiver verifies, retries seen in the log,
dead letters, redelivery, filters, and a slow receiver that holds up no one else."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import AsyncExitStack

import httpx
import nats
import pytest

from mpr_api.app import create_app
from mpr_api.settings import ApiSettings
from mpr_api.webhooks.feature import lifespan_on_mapping as lifespan
from mpr_api.webhooks.signing import verify
from mpr_common import subjects as s
from mpr_common.catalog_requests import GetJob, JobReply
from mpr_common.codec import decode, encode
from mpr_common.errors import NotFound, error_headers
from mpr_common.events import (
    AssetRegistered,
    DeadLetter,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobRequested,
    JobView,
)
from mpr_common.identities import generate_passwords, inbox_prefix
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import setup_jetstream
from mpr_devstack.servers import NatsServer, free_port
from tests.webhooks_receiver import Receiver, until

pytestmark = pytest.mark.system

TOKEN = "t0ken"
SETTINGS = ApiSettings(
    tokens=frozenset({TOKEN}),
    webhook_allow_networks=frozenset({"127.0.0.1"}),
    webhook_allow_http=True,
    webhook_retry_base=0.2,
    webhook_retry_max=0.5,
    webhook_max_attempts=3,
    webhook_timeout=2.0,
    webhook_per_subscription=1,
    request_timeout=2.0,
)


class Env:
    def __init__(self, client, js, receiver, views, server) -> None:
        self.client = client
        self.js = js  # the setup identity: publishes what other services would
        self.receiver = receiver
        self.views = views  # what the stand-in catalog answers: job id -> JobView
        self.server = server

    async def subscribe(self, path: str, **body) -> dict:
        r = await self.client.post("/api/webhooks", json={"url": self.receiver.url(path), **body})
        assert r.status_code == 201, r.text
        return r.json()

    async def publish(self, subject: str, event, msg_id: str | None = None) -> int:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        return (await self.js.publish(subject, encode(event), headers=headers)).seq

    async def delivery_log(self, sub_id: str) -> list[dict]:
        r = await self.client.get(f"/api/webhooks/{sub_id}/deliveries", params={"limit": 200})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    async def wait_state(self, sub_id: str, state: str, count: int = 1, timeout: float = 15) -> list[dict]:
        async def found():
            return [d for d in await self.delivery_log(sub_id) if d["state"] == state]

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await found()
            if len(got) >= count:
                return got
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {count} {state} deliveries: {await self.delivery_log(sub_id)}")


@pytest.fixture
async def env(tmp_path):
    passwords = generate_passwords()
    server = NatsServer(
        tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log", passwords=passwords
    )
    server.start()
    receiver = Receiver().start()
    views: dict[str, JobView] = {}
    async with AsyncExitStack() as stack:
        admin = await nats.connect(server.url)
        stack.push_async_callback(admin.close)
        await setup_jetstream(admin.jetstream(), NatsSettings(), JobQueueSettings())

        async def catalog(msg):  # the catalog's job query, answered from ``views``
            q = decode(msg.data, GetJob)
            view = views.get(q.id or "")
            if view is None:
                await msg.respond(b"", headers=error_headers(NotFound(f"job {q.id} not found")))
            else:
                await msg.respond(encode(JobReply(job=view)))

        await admin.subscribe(s.CATALOG_JOB_GET, cb=catalog)
        # the API's own identity: its permissions and its inboxes
        api_nc = await nats.connect(server.url_as("api"), inbox_prefix=inbox_prefix("api"))
        stack.push_async_callback(api_nc.close)
        state: dict = {"nc": api_nc}
        await stack.enter_async_context(lifespan(SETTINGS, state))
        app = create_app(SETTINGS, state=state)
        app.state.update(state)  # what its lifespan does with ``state``; the client runs in this loop
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mpr.local")
        )
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield Env(client, admin.jetstream(), receiver, views, server)
    receiver.stop()
    server.stop()


def verified(sub: dict, received, now: float | None = None) -> dict:
    """As a receiver does it: check the signature over the exact bytes, then read the CloudEvent."""
    verify(sub["secret"], received.headers, received.body, now=now)
    assert received.headers["content-type"].startswith("application/cloudevents+json")
    return json.loads(received.body)


# --- the subscription resource ------------------------------------------------------------------------
async def test_a_subscription_is_made_listed_changed_and_deleted_and_its_secret_shown_once(env):
    sub = await env.subscribe(
        "/a", types=["job.completed", "job.failed"], kinds=["thumbnail"], key_prefix="in/"
    )
    hook, secret = sub["webhook"], sub["secret"]
    assert secret.startswith("whsec_") and hook["active"] and hook["types"] == ["job.completed", "job.failed"]
    listed = (await env.client.get("/api/webhooks")).json()["items"]
    assert [w["id"] for w in listed] == [hook["id"]] and secret not in json.dumps(listed)
    one = await env.client.get(f"/api/webhooks/{hook['id']}")
    assert one.status_code == 200 and "secret" not in one.json()
    patched = await env.client.patch(f"/api/webhooks/{hook['id']}", json={"active": False, "kinds": []})
    assert patched.status_code == 200 and patched.json()["active"] is False and patched.json()["kinds"] == []
    assert (await env.client.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
    assert (await env.client.get(f"/api/webhooks/{hook['id']}")).status_code == 404
    assert (await env.client.delete(f"/api/webhooks/{hook['id']}")).status_code == 404
    assert (await env.client.get("/api/webhooks/not-an-id")).status_code == 400


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.1.2.3/hook", "private"),
        ("http://[::1]:9/hook", "loopback"),  # only 127.0.0.1 is allowed here
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::ffff:192.168.0.1]/hook", "private"),
        ("http://100.100.100.100/hook", "CGNAT"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
        ("http://u:p@127.0.0.1/hook", "credentials"),
        ("gopher://127.0.0.1/hook", "https"),
    ],
)
async def test_urls_that_are_refused_at_creation(env, url, why):
    r = await env.client.post("/api/webhooks", json={"url": url, "types": ["job.completed"]})
    assert r.status_code == 400 and why in r.json()["detail"], r.text
    assert (await env.client.get("/api/webhooks")).json()["items"] == []


async def test_bad_bodies_are_400(env):
    url = env.receiver.url("/x")
    for body in (
        {"url": url, "types": []},
        {"url": url, "types": ["job.exploded"]},
        {"url": url, "types": ["job.completed"], "kinds": ["nope"]},
        {"url": url, "types": ["job.completed"], "secret": "mine"},
    ):
        assert (await env.client.post("/api/webhooks", json=body)).status_code == 400


# --- delivery ------------------------------------------------------------------------------------------
async def test_a_queued_job_arrives_as_a_signed_cloudevent_and_is_logged(env):
    sub = await env.subscribe("/queued", types=["job.queued"])
    seq = await env.publish(
        s.JOB_REQUESTED, JobRequested(job_id="job-1", kind="thumbnail", source_key="in/a.mp4")
    )
    [got] = await until(lambda: env.receiver.on("/queued"), 10, "the delivery")
    event = verified(sub, got)
    assert event["specversion"] == "1.0" and event["type"] == "io.mpr.job.queued"
    assert (
        event["subject"] == "job-1"
        and event["source"] == "/mpr/jobs"
        and event["id"] == got.headers["webhook-id"]
    )
    assert event["data"]["kind"] == "thumbnail" and event["data"]["source_key"] == "in/a.mp4"
    [logged] = await env.wait_state(sub["webhook"]["id"], "delivered")
    assert logged["id"] == event["id"] and logged["event"] == event and seq > 0
    assert [a["status_code"] for a in logged["attempts"]] == [200] and logged["attempts"][0]["latency_ms"] > 0
    one = await env.client.get(f"/api/webhooks/{sub['webhook']['id']}/deliveries/{event['id']}")
    assert one.status_code == 200 and one.json()["state"] == "delivered"


async def test_500_twice_then_200_is_retried_with_the_same_id_and_body(env):
    env.receiver.script["/flaky"] = [500, 500, 200]
    sub = await env.subscribe("/flaky", types=["job.queued"])
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="job-2", kind="audio", source_key="a.wav"))
    [logged] = await env.wait_state(sub["webhook"]["id"], "delivered")
    assert [a["status_code"] for a in logged["attempts"]] == [500, 500, 200]
    assert logged["attempts"][0]["error"].startswith("HTTP 500")
    received = env.receiver.on("/flaky")
    assert len(received) == 3 and len({r.body for r in received}) == 1
    assert {r.headers["webhook-id"] for r in received} == {logged["id"]}
    for r in received:
        verified(sub, r)
    gaps = [b.at - a.at for a, b in zip(received, received[1:], strict=False)]
    assert all(g >= 0.09 for g in gaps), gaps  # backed off (half of 0.2 s at least), not hammered


async def test_a_400_is_final_dead_lettered_and_can_be_redelivered(env):
    env.receiver.script["/strict"] = [400, 200]
    sub = await env.subscribe("/strict", types=["job.queued"])
    sub_id = sub["webhook"]["id"]
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="job-3", kind="audio", source_key="a.wav"))
    [dead] = await env.wait_state(sub_id, "dead")
    assert [a["status_code"] for a in dead["attempts"]] == [400]  # not retried
    letter = await env.js.get_msg(s.DLQ_STREAM, subject=s.DLQ_WEBHOOKS)
    dl = decode(letter.data, DeadLetter)
    assert dl.job_id == "job-3" and "HTTP 400" in dl.error and dead["id"] in dl.payload
    r = await env.client.post(f"/api/webhooks/{sub_id}/deliveries/{dead['id']}/redeliver")
    assert r.status_code == 202 and r.json()["state"] == "pending" and r.json()["redeliveries"] == 1
    [again] = await env.wait_state(sub_id, "delivered")
    assert [(a["status_code"], a.get("series", 0)) for a in again["attempts"]] == [(400, 0), (200, 1)]
    first, second = env.receiver.on("/strict")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    verified(sub, second)
    missing = await env.client.post(f"/api/webhooks/{sub_id}/deliveries/{'0' * 32}/redeliver")
    assert missing.status_code == 404


async def test_a_receiver_that_keeps_failing_is_dead_after_the_last_attempt(env):
    env.receiver.script["/down"] = [503]
    env.receiver.headers["/down"] = {"retry-after": "0"}
    sub = await env.subscribe("/down", types=["job.queued"])
    sub_id = sub["webhook"]["id"]
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="job-4", kind="audio", source_key="a.wav"))
    [retrying] = await env.wait_state(sub_id, "retrying")
    assert retrying["next_attempt_at"] > retrying["attempts"][-1]["at"]
    r = await env.client.post(f"/api/webhooks/{sub_id}/deliveries/{retrying['id']}/redeliver")
    assert r.status_code == 409  # still being retried
    [dead] = await env.wait_state(sub_id, "dead")
    assert [a["status_code"] for a in dead["attempts"]] == [503, 503, 503]  # WEBHOOK_MAX_ATTEMPTS


async def test_outcomes_carry_the_catalogs_kind_filters_apply_and_a_cancel_is_sent_once(env):
    env.views["j-thumb"] = JobView(id="j-thumb", kind="thumbnail", status="cancelled", source_key="in/x.mp4",
                                   created_at=1, updated_at=2)  # fmt: skip
    env.views["j-audio"] = JobView(id="j-audio", kind="audio", status="completed", source_key="in/y.wav",
                                   created_at=1, updated_at=2)  # fmt: skip
    thumbs = await env.subscribe("/thumbs", types=["job.completed", "job.cancelled"], kinds=["thumbnail"])
    under = await env.subscribe("/under", types=["job.completed"], key_prefix="in/y")
    await env.publish(
        s.JOB_COMPLETED, JobCompleted(job_id="j-audio", output_key="o.m4a", output_bucket="out")
    )
    await env.publish(s.JOB_CANCEL, JobCancel(job_id="j-thumb"), msg_id="cancel-j-thumb")
    await env.publish(s.JOB_FAILED, JobFailed(job_id="j-thumb", error="cancelled", reason="cancelled"))
    [done] = await until(lambda: env.receiver.on("/under"), 10, "job.completed")
    event = verified(under, done)
    assert event["type"] == "io.mpr.job.completed" and event["data"]["kind"] == "audio"
    [cancelled] = await until(lambda: env.receiver.on("/thumbs"), 10, "job.cancelled")
    assert verified(thumbs, cancelled)["type"] == "io.mpr.job.cancelled"
    await asyncio.sleep(1.0)  # the worker's report of the same cancellation is not sent again
    assert len(env.receiver.on("/thumbs")) == 1 and len(env.receiver.on("/under")) == 1


async def test_events_stored_before_a_subscription_are_not_sent_to_it(env):
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="early", kind="audio", source_key="a.wav"))
    sub = await env.subscribe("/late", types=["job.queued", "asset.registered"])
    asset = AssetRegistered(asset_id="a" * 32, bucket="in", key="v/new.mp4", etag="e")
    await env.publish(s.asset_subject("in", "v/new.mp4"), asset)
    [got] = await until(lambda: env.receiver.on("/late"), 10, "the asset event")
    event = verified(sub, got)
    assert event["type"] == "io.mpr.asset.registered" and event["subject"] == "v/new.mp4"
    await asyncio.sleep(0.5)
    assert len(env.receiver.on("/late")) == 1  # "early" was stored before it


async def test_a_slow_receiver_holds_up_no_other_subscription(env):
    slow_answers = env.receiver.hold["/slow"] = threading.Event()
    slow = await env.subscribe("/slow", types=["job.queued"])
    fast = await env.subscribe("/fast", types=["job.queued"])
    try:
        for i in range(4):
            await env.publish(
                s.JOB_REQUESTED, JobRequested(job_id=f"burst-{i}", kind="audio", source_key="a.wav")
            )
        # all four reach the fast receiver while the slow one has not answered its first
        await until(lambda: len(env.receiver.on("/fast")) >= 4, 10, "all four on the fast receiver")
        assert len(env.receiver.on("/slow")) == 1  # one at a time there (WEBHOOK_PER_SUBSCRIPTION=1)
    finally:
        slow_answers.set()
    await env.wait_state(slow["webhook"]["id"], "delivered", count=4, timeout=20)
    assert fast["webhook"]["id"] != slow["webhook"]["id"]


async def test_after_a_rotation_both_secrets_sign_until_the_grace_ends(env):
    sub = await env.subscribe("/rotated", types=["job.queued"])
    r = await env.client.post(f"/api/webhooks/{sub['webhook']['id']}/rotate-secret")
    assert r.status_code == 200
    new = r.json()
    assert new["secret"] != sub["secret"] and new["previous_valid_until"] > time.time()
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="rot-1", kind="audio", source_key="a.wav"))
    [got] = await until(lambda: env.receiver.on("/rotated"), 10, "the delivery")
    verify(sub["secret"], got.headers, got.body) and verify(new["secret"], got.headers, got.body)
    assert len(got.headers["webhook-signature"].split()) == 2


async def test_a_paused_subscription_gets_nothing(env):
    sub = await env.subscribe("/paused", types=["job.queued"])
    await env.client.patch(f"/api/webhooks/{sub['webhook']['id']}", json={"active": False})
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="p-1", kind="audio", source_key="a.wav"))
    await env.js.publish(s.JOB_REQUESTED, b"not json")  # skipped too, and holds up nothing
    other = await env.subscribe("/other", types=["job.queued"])
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="p-2", kind="audio", source_key="a.wav"))
    await until(lambda: env.receiver.on("/other"), 10, "the later event")
    assert env.receiver.on("/paused") == [] and other


# --- GraphQL ---------------------------------------------------------------------------------------------
async def gql(env, query: str, **variables) -> dict:
    r = await env.client.post("/graphql", json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()


async def test_graphql_has_the_same_fields(env):
    created = await gql(
        env,
        "mutation($w: WebhookInput!) { createWebhook(webhook: $w) { secret webhook { id url types } } }",
        w={"url": env.receiver.url("/gql"), "types": ["job.queued"]},
    )
    made = created["data"]["createWebhook"]
    sub_id = made["webhook"]["id"]
    assert made["secret"].startswith("whsec_") and made["webhook"]["types"] == ["job.queued"]
    listed = await gql(
        env, "{ webhooks { id active } webhook(id: $id) { url } }".replace("$id", f'"{sub_id}"')
    )
    assert listed["data"]["webhooks"] == [{"id": sub_id, "active": True}]
    await env.publish(s.JOB_REQUESTED, JobRequested(job_id="g-1", kind="audio", source_key="a.wav"))
    await env.wait_state(sub_id, "delivered")
    page = await gql(
        env,
        "query($id: String!) { webhookDeliveries(id: $id) { nextAfter more items { id state event "
        "attempts { statusCode } } } }",
        id=sub_id,
    )
    [item] = page["data"]["webhookDeliveries"]["items"]
    assert item["state"] == "delivered" and item["attempts"] == [{"statusCode": 200}]
    assert item["event"]["type"] == "io.mpr.job.queued"
    again = await gql(
        env,
        "mutation($id: String!, $d: String!) { redeliverWebhook(id: $id, deliveryId: $d) { state redeliveries } }",
        id=sub_id,
        d=item["id"],
    )
    assert again["data"]["redeliverWebhook"] == {"state": "pending", "redeliveries": 1}
    rotated = await gql(env, "mutation($id: String!) { rotateWebhookSecret(id: $id) { secret } }", id=sub_id)
    assert rotated["data"]["rotateWebhookSecret"]["secret"] != made["secret"]
    refused = await gql(
        env,
        "mutation($w: WebhookInput!) { createWebhook(webhook: $w) { secret } }",
        w={"url": "http://10.0.0.1/x", "types": ["job.queued"]},
    )
    assert (
        refused["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        and "private" in refused["errors"][0]["message"]
    )
    gone = await gql(env, "mutation($id: String!) { deleteWebhook(id: $id) }", id=sub_id)
    assert (await gql(env, "query($id: String!) { webhook(id: $id) { id } }", id=sub_id))["data"] == {
        "webhook": None
    }
    assert gone["data"]["deleteWebhook"] is True
    missing = await gql(env, "mutation($id: String!) { deleteWebhook(id: $id) }", id=sub_id)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


# --- the bus: who may touch what -------------------------------------------------------------------------
async def test_no_other_identity_may_queue_a_webhook_task_or_read_the_secrets(env):
    """A task is signed with its subscription's secret when it is sent: whoever could publish one could
    have any content signed. Only the API may write the tasks queue or read the subscriptions."""
    for identity in ("catalog", "scanner", "transcoder", "publisher", "minio"):
        errors: list[str] = []

        async def on_error(exc, errors=errors):
            errors.append(str(exc))

        nc = await nats.connect(env.server.url_as(identity), error_cb=on_error, max_reconnect_attempts=0)
        try:
            js = nc.jetstream(timeout=0.2)
            with pytest.raises(Exception):  # noqa: B017 - refused: the publish is never acknowledged
                await js.publish(s.WEBHOOK_TASKS, b"{}", timeout=0.2)
            with pytest.raises(Exception):  # noqa: B017
                await js.key_value(s.WEBHOOKS_KV)
            await nc.flush()
            await asyncio.sleep(0.05)
        finally:
            await nc.close()
        assert sum("permissions violation" in e.lower() for e in errors) >= 2, (identity, errors)
