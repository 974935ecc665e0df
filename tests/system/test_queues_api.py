"""Queue control through the API in process, over a real nats-server set up by mpr-setup (streams, class
consumers, KV buckets); the catalog's answers come from a dict. What each call writes on the bus: pause
flags, the moved copy of a job (its class, header, de-duplication id), the move's record, JobMoved; and
when a move is refused."""

from __future__ import annotations

import asyncio
import time

import httpx
import nats
import pytest

from mpr_api.app import create_app, services
from mpr_api.jobs.service import queued_view
from mpr_api.queues.service import QueueService
from mpr_api.queues.waiting import find_waiting
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.catalog_requests import GetJob, JobReply
from mpr_common.codec import decode, encode
from mpr_common.errors import NotFound, error_headers
from mpr_common.events import PRIORITIES, JobMoved, JobRequested, JobView
from mpr_common.jobstate import QUEUE_MOVE_HEADER, QueuePlace, QueuePlaces
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import setup_jetstream
from mpr_devstack.servers import NatsServer, free_port

pytestmark = pytest.mark.system

TOKEN = "t0ken"


class Catalog:
    """Answers the API's job queries from ``jobs`` (job id -> JobView)."""

    def __init__(self, nc) -> None:
        self.nc = nc
        self.jobs: dict[str, JobView] = {}

    async def answer(self, msg) -> None:
        q = decode(msg.data, GetJob)
        job = self.jobs.get(q.id or "")
        if job is None:
            await self.nc.publish(msg.reply, b"", headers=error_headers(NotFound(f"job {q.id} not found")))
        else:
            await msg.respond(encode(JobReply(job=job)))


@pytest.fixture
async def bus(tmp_path):
    srv = NatsServer(tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log").start()
    nc = await nats.connect(srv.url)
    js = nc.jetstream()
    await setup_jetstream(js, NatsSettings(), JobQueueSettings())
    catalog = Catalog(nc)
    await nc.subscribe(s.CATALOG_JOB_GET, cb=catalog.answer)
    yield nc, catalog
    await nc.close()
    srv.stop()


@pytest.fixture
async def api(bus):
    nc, catalog = bus
    js = nc.jetstream()
    settings = ApiSettings(tokens=frozenset({TOKEN}), request_timeout=3)
    state = services(
        settings, nc, await js.key_value(s.JOB_STATE_KV), None, await js.key_value(s.OUTPUT_OWNERS_KV)
    )
    places = QueuePlaces(await js.key_value(s.JOB_STATE_KV))
    state["queues"] = QueueService(settings, nc, await js.key_value(s.QUEUES_KV), places, state["jobs"])
    app = create_app(settings, state=state)
    app.state.update(state)  # in this event loop, with its NATS connection (no lifespan runs here)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://mpr.local", headers=headers) as client:
        yield client, nc, catalog, places


async def submit(client, catalog, priority: str, job_id: str) -> dict:
    r = await client.post(
        "/api/jobs",
        json={"kind": "thumbnail", "source_key": "a/b.mp4", "priority": priority, "job_id": job_id},
    )
    assert r.status_code == 202, r.text
    req = JobRequested(job_id=job_id, kind="thumbnail", source_key="a/b.mp4", priority=priority)
    catalog.jobs[job_id] = queued_view(req)
    return r.json()["job"]


async def stored(nc, subject: str) -> list:
    """The messages stored on ``subject``, oldest first."""
    js = nc.jetstream()
    found, seq = [], 1
    while True:
        try:
            msg = await js.get_msg(s.JOBS_STREAM, seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return found
        found.append(msg)
        seq = msg.seq + 1


async def test_queues_list_every_class_and_pause_and_resume_write_the_flags(api):
    client, nc, catalog, _ = api
    for i in range(3):
        await submit(client, catalog, "bulk", f"b{i}")
    r = await client.get("/api/queues")
    assert r.status_code == 200, r.text
    queues = {q["priority"]: q for q in r.json()["queues"]}
    assert list(queues) == list(PRIORITIES)
    assert queues["bulk"]["pending"] == 3 and queues["bulk"]["in_flight"] == 0
    assert queues["bulk"]["consumer"] == s.transcoders_durable("bulk")
    assert 0 <= queues["bulk"]["oldest_waiting_seconds"] < 60
    assert queues["urgent"]["pending"] == 0 and queues["urgent"]["oldest_waiting_seconds"] is None

    flags = await nc.jetstream().key_value(s.QUEUES_KV)
    r = await client.post("/api/queues/bulk/pause")
    assert r.status_code == 200 and {q["priority"]: q["paused"] for q in r.json()["queues"]} == {
        "urgent": False,
        "normal": False,
        "bulk": True,
    }
    assert (await flags.get("bulk")).value == s.QUEUE_PAUSED
    r = await client.post("/api/queues/pause")
    assert all(q["paused"] for q in r.json()["queues"])
    r = await client.post("/api/queues/bulk/resume")
    assert [q["paused"] for q in r.json()["queues"]] == [True, True, False]
    r = await client.post("/api/queues/resume")
    assert not any(q["paused"] for q in r.json()["queues"])
    assert (await client.post("/api/queues/someday/pause")).status_code == 400


async def test_graphql_has_the_same_queue_control(api):
    client, *_ = api

    async def gql(query: str) -> dict:
        r = await client.post("/graphql", json={"query": query})
        assert r.status_code == 200, r.text
        return r.json()

    out = await gql('mutation { pauseQueues(priority: "urgent") { priority paused } }')
    assert out["data"]["pauseQueues"][0] == {"priority": "urgent", "paused": True}
    out = await gql("{ queues { priority paused pending inFlight oldestWaitingSeconds consumer } }")
    assert [q["paused"] for q in out["data"]["queues"]] == [True, False, False]
    out = await gql("mutation { resumeQueues { paused } }")
    assert not any(q["paused"] for q in out["data"]["resumeQueues"])
    out = await gql('mutation { pauseQueues(priority: "later") { paused } }')
    assert out["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    out = await gql('mutation { moveJob(id: "nope", priority: "urgent") { id } }')
    assert out["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_move_publishes_the_same_request_on_the_new_class_and_records_it(api):
    client, nc, catalog, places = api
    # Around it, other jobs of its class: the move finds its own request among them.
    for i in range(40):
        await submit(client, catalog, "bulk", f"before{i}")
    job = await submit(client, catalog, "bulk", "mover")
    for i in range(40):
        await submit(client, catalog, "bulk", f"after{i}")
    original = decode((await stored(nc, s.requested_subject("bulk")))[40].data, JobRequested)

    r = await client.post("/api/jobs/mover/move", json={"priority": "urgent"})
    assert r.status_code == 200, r.text
    [moved] = await stored(nc, s.requested_subject("urgent"))
    assert moved.headers[QUEUE_MOVE_HEADER] == "1" and moved.headers["Nats-Msg-Id"] == "mover.moved.urgent.1"
    copy = decode(moved.data, JobRequested)
    assert copy == JobRequested(
        **{**{f: getattr(original, f) for f in original.__struct_fields__}, "priority": "urgent"}
    )
    assert copy.output_key == job["output_key"]
    assert await places.get("mover") == QueuePlace(priority="urgent", move=1, seq=moved.seq)
    [event] = await stored(nc, s.JOB_MOVED)
    assert decode(event.data, JobMoved).priority == "urgent"

    # Repeated (a client retrying after a lost answer): nothing new is published.
    catalog.jobs["mover"] = JobView(**{**_fields(catalog.jobs["mover"]), "priority": "urgent"})
    r = await client.post("/api/jobs/mover/move", json={"priority": "urgent"})
    assert r.status_code == 200 and len(await stored(nc, s.requested_subject("urgent"))) == 1
    # Moved on again: from where the last move put it.
    r = await client.post("/api/jobs/mover/move", json={"priority": "normal"})
    assert r.status_code == 200, r.text
    [again] = await stored(nc, s.requested_subject("normal"))
    assert again.headers[QUEUE_MOVE_HEADER] == "2"
    assert await places.get("mover") == QueuePlace(priority="normal", move=2, seq=again.seq)


def _fields(view: JobView) -> dict:
    return {f: getattr(view, f) for f in view.__struct_fields__}


async def test_a_move_is_refused_unless_the_job_waits_in_a_transcoders_queue(api):
    client, nc, catalog, places = api
    await submit(client, catalog, "bulk", "running-one")
    catalog.jobs["running-one"] = JobView(**{**_fields(catalog.jobs["running-one"]), "status": "running"})
    r = await client.post("/api/jobs/running-one/move", json={"priority": "urgent"})
    assert r.status_code == 409 and "only a queued job" in r.json()["detail"]

    # Queued in the catalog's eyes, but a transcoder has just taken it.
    await submit(client, catalog, "bulk", "just-started")
    assert await places.claim("just-started", QueuePlace(priority="bulk"))
    r = await client.post("/api/jobs/just-started/move", json={"priority": "urgent"})
    assert r.status_code == 409 and "started" in r.json()["detail"]

    # A job run by Lambda is recorded as queued but never waits in a transcoders' queue.
    req = JobRequested(job_id="by-lambda", kind="thumbnail", source_key="a/b.mp4")
    await nc.jetstream().publish(s.JOB_DISPATCHED, encode(req), headers={"Nats-Msg-Id": "by-lambda"})
    catalog.jobs["by-lambda"] = queued_view(req)
    r = await client.post("/api/jobs/by-lambda/move", json={"priority": "urgent"})
    assert r.status_code == 409 and "not waiting" in r.json()["detail"]

    child = JobRequested(job_id="p1-720p", kind="rendition", source_key="a/b.mp4", parent_id="p1")
    catalog.jobs["p1-720p"] = queued_view(child)
    r = await client.post("/api/jobs/p1-720p/move", json={"priority": "urgent"})
    assert r.status_code == 409 and "package" in r.json()["detail"]

    assert (await client.post("/api/jobs/nope/move", json={"priority": "urgent"})).status_code == 404
    assert (await client.post("/api/jobs/x/move", json={"priority": "asap"})).status_code == 400
    assert (await client.post("/api/jobs/x/move", json={"priority": "bulk", "extra": 1})).status_code == 400
    assert await stored(nc, s.requested_subject("urgent")) == []  # nothing was moved


async def test_the_same_class_is_no_move(api):
    client, nc, catalog, _ = api
    await submit(client, catalog, "normal", "stay")
    r = await client.post("/api/jobs/stay/move", json={"priority": "normal"})
    assert r.status_code == 200 and r.json()["job"]["priority"] == "normal"
    assert await stored(nc, s.JOB_MOVED) == []
    await asyncio.sleep(0)


@pytest.mark.parametrize("skew", [0.0, 30.0, -30.0])
async def test_a_waiting_request_is_found_among_thousands_whatever_the_publishers_clock(bus, skew):
    """Publishers whose clocks are off: a request is found by the time its publisher made it, in a few
    reads, not by walking the backlog (the walk is bounded)."""
    nc, _ = bus
    js = nc.jetstream()
    now = time.time() + skew
    futures = []
    for i in range(3000):
        req = JobRequested(
            job_id=f"j{i}",
            kind="thumbnail",
            source_key="a/b.mp4",
            priority="bulk",
            requested_at=now + i * 1e-4,
        )
        futures.append(js.publish(s.requested_subject("bulk"), encode(req), headers={"Nats-Msg-Id": f"j{i}"}))
    await asyncio.gather(*futures)
    reads = 0
    get_msg = js.get_msg

    async def counted(*args, **kwargs):
        nonlocal reads
        reads += 1
        return await get_msg(*args, **kwargs)

    js.get_msg = counted  # type: ignore[method-assign]
    for i in (0, 1500, 2999):
        found = await find_waiting(js, f"j{i}", "bulk", 0, now + i * 1e-4, time.time() + 1, None)
        assert (
            found is not None
            and found.request.job_id == f"j{i}"
            and found.place == QueuePlace(priority="bulk", seq=found.place.seq)
        )
    assert reads < 3 * 40
    assert await find_waiting(js, "j-absent", "bulk", 0, now, time.time() + 1, None) is None
