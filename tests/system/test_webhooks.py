"""Webhooks on the whole system (real nats-server with per-service identities, the four services as
processes) and a real HTTP receiver on 127.0.0.1 (allowed by WEBHOOK_ALLOW_NETWORKS, as `make dev`
must allow it): a real job's completion arrives as a CloudEvent whose signature verifies as a receiver
checks it; 500 twice then 200 is retried (seen in the log); an always-400 receiver is final and
dead-lettered; redelivery works; an asset registered by a scan is sent too.

One API replica runs here. The fan-out and the attempts are pulled from durable consumers that every
replica shares (mpr-setup makes them), so JetStream hands each event, and each attempt, to one replica:
more replicas share the work, they do not repeat it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import nats
import pytest

from mpr_api.webhooks.signing import verify
from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.events import DeadLetter
from mpr_devstack.stack import DEV_API_TOKEN, Stack
from tests.system.conftest import FAST_RETRIES, wait_for, wait_job
from tests.webhooks_receiver import Receiver

pytestmark = pytest.mark.system

WEBHOOK_ENV = {
    "WEBHOOK_ALLOW_NETWORKS": "127.0.0.1",
    "WEBHOOK_ALLOW_HTTP": "true",
    "WEBHOOK_RETRY_BASE": "0.3",
    "WEBHOOK_RETRY_MAX": "1",
    "WEBHOOK_MAX_ATTEMPTS": "4",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory) -> Iterator[Stack]:
    st = Stack(tmp_path_factory.mktemp("webhooks"), transcoders=1, extra_env={**FAST_RETRIES, **WEBHOOK_ENV})
    try:
        st.start()
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="module")
def client(hooked: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=hooked.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
    ) as c:
        yield c


def subscribe(client: httpx.Client, url: str, **body) -> dict:
    r = client.post("/api/webhooks", json={"url": url, **body})
    assert r.status_code == 201, r.text
    return r.json()


def log_of(client: httpx.Client, sub: dict) -> list[dict]:
    return client.get(f"/api/webhooks/{sub['webhook']['id']}/deliveries", params={"limit": 200}).json()[
        "items"
    ]


def in_state(client: httpx.Client, sub: dict, state: str) -> dict:
    return wait_for(
        lambda: next((d for d in log_of(client, sub) if d["state"] == state), None),
        60,
        what=f"a {state} delivery",
    )


def test_a_finished_job_arrives_signed_with_its_outcome(hooked, client, receiver, media_dir):
    s3 = hooked.s3_client()
    key = f"hooks-{uuid.uuid4().hex[:6]}/a.mp4"
    sub = subscribe(client, receiver.url("/done"), types=["job.completed"], kinds=["thumbnail"])
    assets = subscribe(client, receiver.url("/assets"), types=["asset.registered"], key_prefix=key)
    s3.upload_file(str(media_dir / "sample.mp4"), hooked.bucket_in, key)
    assert client.post("/api/assets/scan", json={"prefix": key}).json()["registered"] == 1
    r = client.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "start": 1})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job"]["id"])["job"]
    assert job["status"] == "completed"
    [got] = receiver.wait("/done")
    assert verify(sub["secret"], got.headers, got.body) == got.headers["webhook-id"]  # as a receiver does
    event = json.loads(got.body)
    assert (event["type"], event["subject"], event["specversion"]) == (
        "io.mpr.job.completed",
        job["id"],
        "1.0",
    )
    assert event["data"]["output_key"] == job["output_key"] and event["data"]["kind"] == "thumbnail"
    assert event["data"]["source_key"] == key and "log" not in event["data"]
    [registered] = receiver.wait("/assets")
    verify(assets["secret"], registered.headers, registered.body)
    assert json.loads(registered.body)["subject"] == key
    assert [a["status_code"] for a in in_state(client, sub, "delivered")["attempts"]] == [200]


def test_500_twice_then_200_is_retried_and_the_log_shows_it(client, receiver):
    receiver.script["/flaky"] = [500, 500, 200]
    sub = subscribe(client, receiver.url("/flaky"), types=["job.queued"])
    r = client.post("/api/jobs", json={"kind": "audio", "source_key": "missing/none.wav"})
    assert r.status_code == 202, r.text
    delivered = in_state(client, sub, "delivered")
    assert [a["status_code"] for a in delivered["attempts"]] == [500, 500, 200]
    assert delivered["event"]["subject"] == r.json()["job"]["id"]
    received = receiver.on("/flaky")
    assert len(received) == 3 and {x.headers["webhook-id"] for x in received} == {delivered["id"]}
    for x in received:
        verify(sub["secret"], x.headers, x.body)


def test_a_400_is_final_dead_lettered_and_redelivered_on_request(hooked, client, receiver):
    receiver.script["/strict"] = [400, 204]
    sub = subscribe(client, receiver.url("/strict"), types=["job.queued"])
    r = client.post("/api/jobs", json={"kind": "audio", "source_key": "missing/other.wav"})
    job_id = r.json()["job"]["id"]
    dead = in_state(client, sub, "dead")
    assert [a["status_code"] for a in dead["attempts"]] == [400] and len(receiver.on("/strict")) == 1

    async def letter() -> DeadLetter:
        nc = await nats.connect(hooked.nats.url)  # the setup identity may read MPR_DLQ
        try:
            msg = await nc.jetstream().get_msg(s.DLQ_STREAM, subject=s.DLQ_WEBHOOKS)
            return decode(msg.data or b"", DeadLetter)
        finally:
            await nc.close()

    dl = asyncio.run(letter())
    assert dl.job_id == job_id and "HTTP 400" in dl.error and dead["id"] in dl.payload
    again = client.post(f"/api/webhooks/{sub['webhook']['id']}/deliveries/{dead['id']}/redeliver")
    assert again.status_code == 202, again.text
    delivered = in_state(client, sub, "delivered")
    assert [a["status_code"] for a in delivered["attempts"]] == [400, 204]
    first, second = receiver.on("/strict")
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]
    verify(sub["secret"], second.headers, second.body)
