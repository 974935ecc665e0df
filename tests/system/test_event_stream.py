"""The live event stream against the whole system: GET /api/events shows a job queued, running with an
ETA and completed, in order; a reconnect with Last-Event-ID gives exactly the events after it; filters by
job and kind; assets registered by a scan; the jobEvents GraphQL subscription; no token, no stream; and
the API identity reads the streams but manages no consumer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from mpr_common import subjects as s
from mpr_common.identities import JS_API
from mpr_devstack.stack import DEV_API_TOKEN
from tests.system.test_bus_security import attempt, refused

pytestmark = pytest.mark.system

AUTH = {"Authorization": f"Bearer {DEV_API_TOKEN}"}


def events(lines: Iterator[str], until, timeout: float = 120) -> list[dict]:
    """Parsed SSE events (comments skipped) up to and including the first for which ``until`` holds."""
    got: list[dict] = []
    current: dict = {}
    deadline = time.monotonic() + timeout
    for line in lines:
        assert time.monotonic() < deadline, f"timed out; events so far: {got}"
        if not line:
            if "event" in current:
                got.append(current)
                if until(current):
                    return got
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    raise AssertionError(f"the stream ended; events so far: {got}")


def upload(s3, media_dir, name: str = "sample.mp4") -> str:
    key = f"events-{uuid.uuid4().hex[:8]}/{name}"
    s3.upload_file(str(media_dir / name), "mpr-media-in", key)
    return key


def submit(api: httpx.Client, **body) -> str:
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job"]["id"]


def test_a_job_is_seen_queued_running_with_an_eta_and_completed_and_a_reconnect_resumes_exactly(
    api, s3, media_dir
):
    key = upload(s3, media_dir)
    job_id = f"ev-{uuid.uuid4().hex[:8]}"
    ended = {"job.completed", "job.failed", "job.cancelled"}
    with api.stream("GET", "/api/events", params={"job_id": job_id}, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        # a VP9 transcode runs long enough for several progress events
        submit(api, kind="transcode", source_key=key, preset="vp9-720p", job_id=job_id)
        seen = events(r.iter_lines(), lambda e: e["event"] in ended)
    types = [e["event"] for e in seen]
    assert types[0] == "job.queued" and types[-1] == "job.completed", types
    progress = [e["data"] for e in seen[1:-1]]
    assert progress and all(e["event"] == "job.progress" for e in seen[1:-1]), types
    assert all(p["status"] == "running" and p["kind"] == "transcode" and p["worker"] for p in progress)
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and any(p["eta"] is not None and p["eta"] >= 0 for p in progress), (
        progress
    )
    done = seen[-1]["data"]
    assert done["status"] == "completed" and done["output_key"] and done["job_id"] == job_id

    # Reconnect after the first progress event: exactly the events after it, in order.
    after = seen[1]
    with api.stream(
        "GET", "/api/events", params={"job_id": job_id}, headers={"Last-Event-ID": after["id"]}, timeout=60
    ) as r:
        rest = events(r.iter_lines(), lambda e: e["event"] in ended, timeout=30)

    # An id carries the assets stream's position too, which moves with registrations this filter
    # leaves out (the upload's may be read before or after the job's events): the jobs part is exact.
    # The eta is this API's estimate as it reads them, not part of the events.
    def fact(e: dict) -> tuple:
        return e["id"].split(".")[1], e["event"], {k: v for k, v in e["data"].items() if k != "eta"}

    assert [fact(e) for e in rest] == [fact(e) for e in seen[2:]]


def test_the_kind_filter_and_asset_registrations(api, s3, media_dir):
    key = upload(s3, media_dir)
    with (
        api.stream(
            "GET", "/api/events", params={"kind": "audio", "types": "job.completed"}, timeout=60
        ) as audio,
        api.stream("GET", "/api/events", params={"types": "asset.registered"}, timeout=60) as assets,
    ):
        thumbnail = submit(api, kind="thumbnail", source_key=key, start=1)
        extracted = submit(api, kind="audio", source_key=key)
        seen = events(audio.iter_lines(), lambda e: e["data"]["job_id"] == extracted)
        assert api.post("/api/assets/scan", json={"prefix": key.split("/")[0] + "/"}).status_code == 200
        registered = events(assets.iter_lines(), lambda e: e["data"]["key"] == key)
    assert all(e["event"] == "job.completed" and e["data"]["kind"] == "audio" for e in seen), seen
    assert thumbnail not in {e["data"]["job_id"] for e in seen}
    asset = registered[-1]["data"]
    assert asset["bucket"] == "mpr-media-in" and asset["info"]["width"] == 640 and asset["asset_id"]


def test_no_token_no_stream(stack):
    r = httpx.get(f"{stack.api_url}/api/events", timeout=10)
    assert r.status_code == 401

    async def ws() -> None:
        host = stack.api_url.removeprefix("http://")
        with pytest.raises(InvalidStatus):
            async with ws_connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"]):
                pass

    asyncio.run(ws())


def test_the_jobevents_subscription_receives_a_jobs_events(stack, api, s3, media_dir):
    key = upload(s3, media_dir)
    job_id = f"gql-{uuid.uuid4().hex[:8]}"
    query = (
        "subscription($j: [String!]) { jobEvents(jobId: $j) { cursor type jobId kind status progress eta } }"
    )

    async def watch() -> list[dict]:
        host = stack.api_url.removeprefix("http://")
        async with ws_connect(
            f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"], additional_headers=AUTH
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": query, "variables": {"j": [job_id]}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            await asyncio.sleep(0.5)  # the subscription is live once the API has read the document
            await asyncio.to_thread(submit, api, kind="thumbnail", source_key=key, start=1, job_id=job_id)
            got: list[dict] = []
            async with asyncio.timeout(120):
                while not got or got[-1]["type"] not in ("job.completed", "job.failed"):
                    message = json.loads(await ws.recv())
                    assert message["type"] == "next", message
                    got.append(message["payload"]["data"]["jobEvents"])
            await ws.send(json.dumps({"id": "1", "type": "complete"}))
            return got

    got = asyncio.run(watch())
    assert got[0]["type"] == "job.queued" and got[-1]["type"] == "job.completed", got
    assert {e["jobId"] for e in got} == {job_id} and {e["kind"] for e in got} == {"thumbnail"}


def test_the_api_identity_reads_the_streams_but_manages_no_consumer(stack):
    url = stack.nats.url_as("api")

    async def read(nc) -> None:
        js = nc.jetstream()
        info = await js.stream_info(s.JOBS_STREAM)
        await js.get_msg(s.JOBS_STREAM, info.state.last_seq, subject=s.JOBS_ALL, next=True)

    assert attempt(url, read) == []
    for api_call in (
        f"CONSUMER.CREATE.{s.JOBS_STREAM}",  # even an ephemeral one (its deliver subject is unchecked)
        f"CONSUMER.CREATE.{s.ASSETS_STREAM}",
        f"CONSUMER.CREATE.{s.JOBS_STREAM}.rogue",
        f"CONSUMER.CREATE.{s.JOBS_STREAM}.rogue.{s.JOB_PROGRESS}",
        f"CONSUMER.DURABLE.CREATE.{s.JOBS_STREAM}.rogue",
        f"CONSUMER.MSG.NEXT.{s.JOBS_STREAM}.{s.TRANSCODERS_DURABLE}",  # taking the transcoders' jobs
        f"STREAM.MSG.GET.{s.OBJECTS_STREAM}",  # only the streams it shows
        f"DIRECT.GET.{s.DLQ_STREAM}",
    ):
        errors = attempt(url, lambda nc, c=api_call: nc.request(f"{JS_API}.{c}", b"{}", timeout=0.3))
        assert refused(errors), (api_call, errors)
