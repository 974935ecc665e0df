"""The live event stream: ETA, cursors, filters and the mapping of MPR's events (pure); the shared reader
against a real nats-server as the API identity (order, exact resumes, resets, filters, kinds resolved
once, slow clients, the stream limit); and GET /api/events and the jobEvents subscription in process
(uvicorn on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
import uvicorn
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from mpr_api.app import create_app
from mpr_api.events.directory import JobDirectory
from mpr_api.events.eta import MIN_SPAN, Observation, ProgressClock, eta
from mpr_api.events.hub import EventHub, EventStreamSettings, SlowClient, TooManyStreams
from mpr_api.events.stream import (
    EVENT_TYPES,
    JOB_EVENT_TYPES,
    Cursor,
    EventFilter,
    JobEventData,
    JobFacts,
    StreamEvent,
    asset_event,
    completed_event,
    decode_cursor,
    encode_cursor,
    failed_event,
    job_subject,
    parse_filter,
    progress_event,
    queued_event,
    sse_frame,
)
from mpr_api.http.limits import GRAPHQL_MAX_TOKENS
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import (
    AssetRegistered,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    MediaInfo,
)
from mpr_common.identities import generate_passwords, inbox_prefix
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import setup_jetstream
from mpr_devstack.servers import NatsServer, free_port

pytestmark = pytest.mark.system

TOKEN = "t0ken"


# --- ETA ---------------------------------------------------------------------------------------------
def test_eta_is_the_rate_measured_since_the_first_progress_of_the_attempt():
    # 10 % at t=100, 30 % at t=110: 2 %/s, 70 % to go
    assert eta(30.0, 110.0, first=Observation(100.0, 10.0)) == 35.0
    # FFmpeg's speed does not override a measured rate (a job of several steps)
    assert eta(30.0, 110.0, first=Observation(100.0, 10.0), speed=50.0, out_time=3.0) == 35.0


def test_eta_falls_back_to_ffmpegs_speed_and_written_time():
    # 25 % written is 10 s of media: 30 s to go at 2x realtime
    assert eta(25.0, 100.0, speed=2.0, out_time=10.0) == 15.0
    # a rate over less than MIN_SPAN is noise: the speed is used instead
    assert eta(25.0, 100.0 + MIN_SPAN / 2, first=Observation(100.0, 20.0), speed=2.0, out_time=10.0) == 15.0


def test_eta_is_unknown_without_a_rate_or_a_speed_and_zero_when_done():
    assert eta(0.0, 100.0) is None
    assert eta(40.0, 100.0, speed=None, out_time=5.0) is None
    assert eta(40.0, 110.0, first=Observation(100.0, 40.0)) is None  # no progress since
    assert eta(100.0, 100.0) == 0.0


def test_the_progress_clock_measures_from_the_first_event_of_each_attempt():
    clock = ProgressClock(capacity=2)
    assert clock.observe("a", 1, Observation(10.0, 5.0)) is None
    assert clock.observe("a", 1, Observation(12.0, 9.0)) == Observation(10.0, 5.0)
    assert clock.observe("a", 1, Observation(14.0, 20.0)) == Observation(10.0, 5.0)
    # a new attempt starts over, and so does one whose progress went back
    assert clock.observe("a", 2, Observation(20.0, 1.0)) is None
    assert clock.observe("a", 2, Observation(21.0, 0.5)) is None
    assert clock.observe("a", 2, Observation(23.0, 4.0)) == Observation(21.0, 0.5)
    # an older event read late becomes the reference
    assert clock.observe("a", 2, Observation(19.0, 0.1)) is None
    assert clock.observe("a", 2, Observation(25.0, 6.0)) == Observation(19.0, 0.1)
    clock.forget("a")
    assert clock.observe("a", 2, Observation(30.0, 7.0)) is None
    clock.observe("b", 1, Observation(1.0, 1.0))
    clock.observe("c", 1, Observation(1.0, 1.0))
    assert len(clock) == 2  # bounded: "a" went first


# --- cursors ----------------------------------------------------------------------------------------
def test_a_cursor_round_trips_and_never_moves_back():
    c = Cursor(41, 7)
    assert decode_cursor(encode_cursor(c)) == c
    assert c.advanced("jobs", 42) == Cursor(42, 7)
    assert c.advanced("assets", 9) == Cursor(41, 9)
    assert c.advanced("jobs", 40) is c


@pytest.mark.parametrize("text", ["", "abc", "1.2", "1.-1.0", "2.1.1", "1.1.1.1", f"1.{2**64}.0", "1.1.1\n"])
def test_anything_else_is_not_a_cursor(text):
    if text == "1.1.1\n":  # surrounding whitespace is tolerated (a header's)
        assert decode_cursor(text) == Cursor(1, 1)
        return
    with pytest.raises(ValueError):
        decode_cursor(text)


# --- mapping ----------------------------------------------------------------------------------------
def test_subjects_of_the_jobs_stream_map_to_job_events():
    assert job_subject(s.requested_subject("urgent")) == "requested"
    assert job_subject(s.child_subject("bulk")) == "requested"
    assert (
        job_subject(s.JOB_REQUESTED)
        == job_subject(s.JOB_CHILD)
        == job_subject(s.JOB_DISPATCHED)
        == "requested"
    )
    assert job_subject(s.JOB_PROGRESS) == "progress"
    assert job_subject(s.JOB_PLAYABLE) == "playable"
    assert job_subject(s.JOB_COMPLETED) == "completed"
    assert job_subject(s.JOB_FAILED) == "failed"
    for other in (s.JOB_CANCEL, s.JOB_ATTEMPT, s.JOB_RETRIED, s.JOB_MOVED, "mpr.jobs.requestedx"):
        assert job_subject(other) is None


def _data(event: StreamEvent) -> dict:
    return json.loads(event.json)


def test_job_events_carry_every_field_nulls_included():
    req = JobRequested(
        job_id="j1",
        kind="rendition",
        source_key="a.mp4",
        output_key="o/a.mp4",
        parent_id="p1",
        requested_at=5.0,
    )
    queued = queued_event(req, 3)
    assert (queued.type, queued.stream, queued.seq) == ("job.queued", "jobs", 3)
    data = _data(queued)
    assert list(data) == [
        "job_id", "kind", "status", "progress", "speed", "eta", "worker", "attempt", "parent_id",
        "error", "reason", "output_key", "output_bucket", "at",
    ]  # fmt: skip
    assert data["status"] == "queued" and data["kind"] == "rendition" and data["parent_id"] == "p1"
    assert data["output_key"] == "o/a.mp4" and data["at"] == 5.0 and data["worker"] is None
    assert b"\n" not in queued.json

    facts = JobFacts("rendition", "p1")
    p = JobProgress(job_id="j1", progress=60.0, speed=1.5, out_time=9.0, worker="w1", attempt=2, at=20.0)
    data = _data(progress_event(p, 4, facts, Observation(10.0, 10.0)))
    assert data["status"] == "running" and data["kind"] == "rendition" and data["parent_id"] == "p1"
    assert data["eta"] == 8.0 and data["speed"] == 1.5 and data["attempt"] == 2 and data["worker"] == "w1"
    assert _data(progress_event(p, 4, None, None))["kind"] is None  # the catalog did not know it

    done = completed_event(JobCompleted(job_id="j1", output_key="o", output_bucket="b", at=30.0), 5, facts)
    data = _data(done)
    assert done.type == "job.completed" and data["status"] == "completed" and data["progress"] == 100.0
    assert data["output_bucket"] == "b" and data["eta"] == 0.0


def test_a_failure_for_cancellation_is_a_cancelled_event():
    facts = JobFacts("audio")
    failed = failed_event(JobFailed(job_id="j", error="boom", reason="ffmpeg"), 7, facts)
    cancelled = failed_event(
        JobFailed(job_id="j", error="cancelled by the API", reason="cancelled"), 8, facts
    )
    assert failed.type == "job.failed" and _data(failed)["status"] == "failed"
    assert _data(failed)["error"] == "boom" and _data(failed)["reason"] == "ffmpeg"
    assert cancelled.type == "job.cancelled" and _data(cancelled)["status"] == "cancelled"


def test_asset_events_and_their_frame():
    a = AssetRegistered(
        asset_id="a" * 32,
        bucket="in",
        key="k\nx.mp4",
        etag="e",
        media_type="video",
        info=MediaInfo(width=640),
    )
    event = asset_event(a, 12)
    data = _data(event)
    assert list(data) == ["asset_id", "bucket", "key", "etag", "media_type", "info", "probe_error", "at"]
    assert data["key"] == "k\nx.mp4" and data["info"] == {"width": 640}
    frame = sse_frame("1.0.12", event)
    lines = frame.decode().split("\n")
    assert lines[:2] == ["id: 1.0.12", "event: asset.registered"] and lines[3:] == ["", ""]
    assert json.loads(lines[2].removeprefix("data: ")) == data  # one line, even with a newline in a key


# --- filters ----------------------------------------------------------------------------------------
def _job(type_: str, job_id: str, kind: str | None, parent: str | None = None) -> StreamEvent:
    data = JobEventData(job_id=job_id, kind=kind, status="running", parent_id=parent, at=0.0)
    return StreamEvent.of(type_, "jobs", 1, data)


ASSET = asset_event(AssetRegistered(asset_id="x", bucket="b", key="k", etag="e"), 1)


def test_filters_combine_job_ids_packages_kinds_and_types():
    everything = parse_filter()
    assert everything.types == frozenset(EVENT_TYPES)
    assert everything.matches(ASSET) and everything.matches(_job("job.failed", "j", None))

    package = parse_filter(job_ids=["p1"])
    assert package.matches(_job("job.progress", "p1", "package"))
    assert package.matches(_job("job.progress", "c1", "rendition", parent="p1"))  # its child
    assert not package.matches(_job("job.progress", "c2", "rendition", parent="p2"))
    assert not package.matches(ASSET)

    kinds = parse_filter(kinds=["audio", "trim"], types=["job.completed", "job.failed"])
    assert kinds.matches(_job("job.completed", "j", "audio"))
    assert not kinds.matches(_job("job.progress", "j", "audio"))  # not a chosen type
    assert not kinds.matches(_job("job.completed", "j", "transcode"))
    assert not kinds.matches(_job("job.completed", "j", None))  # kind unknown: not shown as one
    assert parse_filter(types=["asset.registered"]).matches(ASSET)


def test_which_streams_a_filter_needs():
    assert EventFilter().wants("jobs") and EventFilter().wants("assets")
    assert not parse_filter(job_ids=["j"]).wants("assets")
    assert not parse_filter(types=["asset.registered"]).wants("jobs")
    assert not parse_filter(types=["job.progress"]).wants("assets")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"types": ["job.started"]}, "unknown event type job.started"),
        ({"types": [""]}, "names none"),
        ({"kinds": ["nope"]}, "unknown job kind nope"),
        ({"job_ids": [f"j{i}" for i in range(101)]}, "at most 100"),
        ({"job_ids": ["j" * 65]}, "at most 64 characters"),
        ({"types": ["asset.registered"], "allowed_types": JOB_EVENT_TYPES}, "unknown event type"),
    ],
)
def test_bad_filters_say_what_is_wrong(kwargs, reason):
    with pytest.raises(ValueError, match=reason):
        parse_filter(**kwargs)


# --- kinds of jobs not seen requested ---------------------------------------------------------------
async def test_a_jobs_facts_are_asked_once_and_shared_by_concurrent_askers():
    asked: list[str] = []

    async def lookup(job_id: str) -> JobFacts | None:
        asked.append(job_id)
        await asyncio.sleep(0.05)
        return JobFacts("audio") if job_id == "known" else None

    directory = JobDirectory(lookup, capacity=10, retry_after=60)
    answers = await asyncio.gather(*(directory.facts("known") for _ in range(5)))
    assert answers == [JobFacts("audio")] * 5 and asked == ["known"]
    assert await directory.facts("known") == JobFacts("audio") and asked == ["known"]
    assert await directory.facts("gone") is None and await directory.facts("gone") is None
    assert asked == ["known", "gone"]  # not asked again for a while
    directory.learn("seen", JobFacts("trim", "p"))
    assert await directory.facts("seen") == JobFacts("trim", "p") and len(asked) == 2


async def test_a_failing_catalog_leaves_the_kind_unknown():
    async def lookup(job_id: str) -> JobFacts | None:
        raise TimeoutError

    directory = JobDirectory(lookup)
    assert await directory.facts("j") is None


# --- the shared reader, as the API identity on a real nats-server -----------------------------------
@pytest.fixture(scope="module")
def nats_server(tmp_path_factory) -> NatsServer:
    d: Path = tmp_path_factory.mktemp("events-nats")
    srv = NatsServer(
        d / "js", port=free_port(), log_path=d / "nats.log", passwords=generate_passwords()
    ).start()

    async def setup() -> None:
        nc = await nats.connect(srv.url)
        await setup_jetstream(nc.jetstream(), NatsSettings(), JobQueueSettings())
        await nc.close()

    asyncio.run(setup())
    yield srv
    srv.stop()


class Bus:
    """The API's connection (the hub's) and a publisher's (as the transcoders and the catalog publish)."""

    def __init__(self, api: nats.NATS, admin: nats.NATS) -> None:
        self.api = api
        self.admin = admin
        self.js = admin.jetstream()

    async def requested(self, job_id: str, kind: str = "audio", parent_id: str | None = None) -> int:
        subject = s.JOB_CHILD if parent_id else s.JOB_REQUESTED
        req = JobRequested(job_id=job_id, kind=kind, source_key="a.mp4", parent_id=parent_id)  # type: ignore[arg-type]
        return (await self.js.publish(subject, encode(req), headers={"Nats-Msg-Id": job_id})).seq

    async def progress(self, job_id: str, progress: float, at: float, attempt: int = 1) -> int:
        p = JobProgress(job_id=job_id, progress=progress, speed=1.0, out_time=1.0, attempt=attempt, at=at)
        return (await self.js.publish(s.JOB_PROGRESS, encode(p))).seq

    async def completed(self, job_id: str) -> int:
        return (
            await self.js.publish(
                s.JOB_COMPLETED, encode(JobCompleted(job_id=job_id, output_key="o", output_bucket="b"))
            )
        ).seq

    async def failed(self, job_id: str, reason: str = "ffmpeg") -> int:
        f = JobFailed(job_id=job_id, error="x", reason=reason)  # type: ignore[arg-type]
        return (await self.js.publish(s.JOB_FAILED, encode(f))).seq

    async def asset(self, key: str) -> int:
        a = AssetRegistered(asset_id=uuid.uuid4().hex, bucket="in", key=key, etag="e")
        return (await self.js.publish(s.asset_subject("in", key), encode(a))).seq


@pytest.fixture
async def bus(nats_server) -> AsyncIterator[Bus]:
    api = await nats.connect(nats_server.url_as("api"), inbox_prefix=inbox_prefix("api"))
    admin = await nats.connect(nats_server.url)
    yield Bus(api, admin)
    await api.close()
    await admin.close()


class Lookups:
    def __init__(self, facts: dict[str, JobFacts] | None = None) -> None:
        self.facts = facts or {}
        self.asked: list[str] = []

    async def __call__(self, job_id: str) -> JobFacts | None:
        self.asked.append(job_id)
        return self.facts.get(job_id)


def make_hub(bus: Bus, lookups: Lookups | None = None, **settings) -> EventHub:
    return EventHub(bus.api, JobDirectory(lookups or Lookups()), EventStreamSettings(**settings))


async def take(sub, n: int, timeout: float = 5.0) -> list[tuple[str, StreamEvent]]:
    items = []
    async with asyncio.timeout(timeout):
        while len(items) < n:
            item = await sub.next(1.0)
            if item is not None:
                items.append(item)
    return items


async def nothing_more(sub, wait: float = 0.5) -> None:
    assert await sub.next(wait) is None


def _jid() -> str:
    return uuid.uuid4().hex[:12]


async def test_a_live_stream_gives_events_from_now_in_order_with_eta(bus):
    before = _jid()
    await bus.requested(before)  # earlier: not given
    hub = make_hub(bus)
    job = _jid()
    async with hub.subscribe(EventFilter()) as sub:
        await bus.requested(job, kind="transcode")
        await bus.progress(job, 10.0, at=100.0)
        await bus.progress(job, 30.0, at=110.0)
        await bus.completed(job)
        items = await take(sub, 4)
        await nothing_more(sub)
    assert [e.type for _, e in items] == ["job.queued", "job.progress", "job.progress", "job.completed"]
    assert {e.data.job_id for _, e in items} == {job}  # type: ignore[union-attr]
    assert all(e.data.kind == "transcode" for _, e in items)  # type: ignore[union-attr]
    assert items[1][1].data.eta == 9.0  # type: ignore[union-attr]  # FFmpeg's speed: 1 s written, 10 %
    assert items[2][1].data.eta == 35.0  # type: ignore[union-attr]  # measured: 2 %/s
    cursors = [decode_cursor(c) for c, _ in items]
    assert [c.jobs for c in cursors] == sorted(c.jobs for c in cursors) and len(
        {c.jobs for c in cursors}
    ) == 4
    assert not hub.clients and hub._task is None  # the last client gone, the reader stops


async def test_resuming_gives_exactly_the_events_after_the_cursor(bus):
    hub = make_hub(bus)
    job, key = _jid(), f"{_jid()}.mp4"
    async with hub.subscribe(EventFilter()) as sub:
        await bus.requested(job)
        await bus.progress(job, 50.0, at=1.0)
        items = await take(sub, 2)
    cursor = decode_cursor(items[0][0])  # the client saw the queued event, not the progress
    # while it is away: more events of both streams
    await bus.asset(key)
    await bus.completed(job)
    async with hub.subscribe(EventFilter(), after=cursor) as sub:
        resumed = await take(sub, 3)
        await bus.failed(_jid())  # after the catch-up: given live
        live = await take(sub, 1)
        await nothing_more(sub)
    # each stream in its order; the two streams are independent
    assert sorted(e.type for _, e in resumed) == ["asset.registered", "job.completed", "job.progress"]
    assert [e.type for _, e in resumed if e.stream == "jobs"] == ["job.progress", "job.completed"]
    assert live[0][1].type == "job.failed"
    # a cursor whose streams were interleaved otherwise (another replica's) resumes each stream exactly
    last = decode_cursor(resumed[-1][0])
    async with hub.subscribe(EventFilter(), after=Cursor(cursor.jobs, last.assets)) as sub:
        again = await take(sub, 3)
        await nothing_more(sub)
    assert [e.type for _, e in again] == ["job.progress", "job.completed", "job.failed"]


async def test_a_resumed_client_catches_up_while_others_are_live(bus):
    hub = make_hub(bus)
    jobs = [_jid() for _ in range(30)]
    queued = parse_filter(types=["job.queued"])
    async with hub.subscribe(queued) as live:
        await bus.requested(jobs[0])
        [(cursor, _)] = await take(live, 1)
        for j in jobs[1:]:
            await bus.requested(j)
        async with hub.subscribe(queued, after=decode_cursor(cursor)) as late:
            publishing = asyncio.create_task(_publish_requests(bus, 20))  # while it catches up
            caught = await take(late, 29 + 20)
            await publishing
            await nothing_more(late)
        assert len(await take(live, 29 + 20)) == 49
    ids = [e.data.job_id for _, e in caught]  # type: ignore[union-attr]
    assert ids[:29] == jobs[1:] and len(set(ids)) == 49  # nothing lost, nothing twice, in order


async def _publish_requests(bus: Bus, n: int) -> None:
    for _ in range(n):
        await bus.requested(_jid())
        await asyncio.sleep(0.005)


async def test_a_cursor_older_than_the_stream_keeps_is_reset(bus, nats_server):
    hub = make_hub(bus)
    async with hub.subscribe(EventFilter(types=frozenset({"job.queued"}))) as sub:
        await bus.requested(_jid())
        [(cursor, _)] = await take(sub, 1)
    await bus.requested(_jid())
    last = await bus.requested(after_purge := _jid())
    await bus.js.purge_stream(s.JOBS_STREAM, seq=last)  # everything before the last request is gone
    async with hub.subscribe(
        EventFilter(types=frozenset({"job.queued"})), after=decode_cursor(cursor)
    ) as sub:
        reset, kept = await take(sub, 2)
    assert reset[1].type == "reset" and decode_cursor(reset[0]).jobs == last - 1
    assert kept[1].data.job_id == after_purge  # type: ignore[union-attr]
    # a filter that cannot match the lost stream is not told of it
    async with hub.subscribe(parse_filter(types=["asset.registered"]), after=decode_cursor(cursor)) as sub:
        await nothing_more(sub)


async def test_kinds_and_packages_of_jobs_requested_earlier_are_asked_once(bus):
    package, child, other = _jid(), _jid(), _jid()
    await bus.requested(package, kind="package")
    await bus.requested(child, kind="rendition", parent_id=package)
    lookups = Lookups({child: JobFacts("rendition", package), other: JobFacts("transcode")})
    hub = make_hub(bus, lookups)
    async with (
        hub.subscribe(parse_filter(job_ids=[package])) as by_package,
        hub.subscribe(parse_filter(kinds=["transcode"])) as by_kind,
    ):
        for i in range(5):
            await bus.progress(child, 10.0 * i, at=float(i))
            await bus.progress(other, 10.0 * i, at=float(i))
        mine = await take(by_package, 5)
        theirs = await take(by_kind, 5)
        await nothing_more(by_package, 0.2)
        await nothing_more(by_kind, 0.2)
    assert {e.data.job_id for _, e in mine} == {child}  # type: ignore[union-attr]
    assert all(e.data.parent_id == package for _, e in mine)  # type: ignore[union-attr]
    assert {e.data.job_id for _, e in theirs} == {other}  # type: ignore[union-attr]
    assert sorted(lookups.asked) == sorted([child, other])  # once each, not once per event


async def test_a_slow_client_is_cut_off_after_its_buffer(bus):
    hub = make_hub(bus, buffer=3)
    async with hub.subscribe(EventFilter()) as slow, hub.subscribe(EventFilter()) as fast:
        reading = asyncio.create_task(take(fast, 6))
        for _ in range(6):
            await bus.failed(_jid())
        assert len(await reading) == 6
        queued = [await slow.next(1.0) for _ in range(3)]
        assert all(item is not None for item in queued)
        with pytest.raises(SlowClient):
            await slow.next(1.0)
        assert slow not in hub.live and fast in hub.live


async def test_streams_beyond_the_limit_are_refused(bus):
    hub = make_hub(bus, max_streams=2)
    async with hub.subscribe(EventFilter()), hub.subscribe(EventFilter()):
        with pytest.raises(TooManyStreams):
            async with hub.subscribe(EventFilter()):
                pass
    async with hub.subscribe(EventFilter()):  # freed
        pass


# --- HTTP and GraphQL, in process --------------------------------------------------------------------
async def until(done, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@contextlib.asynccontextmanager
async def serve(hub: EventHub, tokens=frozenset({TOKEN})) -> AsyncIterator[str]:
    app = create_app(ApiSettings(tokens=tokens), state={"event_hub": hub})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, 10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def sse_events(response: httpx.Response, n: int, timeout: float = 5.0) -> list[dict]:
    """The next ``n`` events of an SSE response (comments skipped), parsed."""
    events: list[dict] = []
    current: dict = {}
    async with asyncio.timeout(timeout):
        async for line in response.aiter_lines():
            if not line:
                if "event" in current:
                    events.append(current)
                    if len(events) == n:
                        return events
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
    return events


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_get_api_events_streams_filters_and_resumes(bus):
    hub = make_hub(bus)
    job = _jid()
    async with serve(hub) as host, httpx.AsyncClient(base_url=f"http://{host}", headers=AUTH) as client:
        async with client.stream("GET", "/api/events", params={"job_id": job}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            await bus.requested(_jid())  # another job: filtered out
            await bus.requested(job)
            await bus.progress(job, 20.0, at=1.0)
            await bus.completed(job)
            got = await sse_events(r, 3)
        assert [e["event"] for e in got] == ["job.queued", "job.progress", "job.completed"]
        assert got[0]["data"]["job_id"] == job and got[1]["data"]["status"] == "running"
        headers = {"Last-Event-ID": got[0]["id"]}
        async with client.stream(
            "GET", "/api/events", params={"job_id": job, "after": "1.0.0"}, headers=headers
        ) as r:
            again = await sse_events(r, 2)  # Last-Event-ID wins over ?after=
        assert [e["id"] for e in again] == [e["id"] for e in got[1:]]

        assert (await client.get("/api/events", params={"types": "job.started"})).status_code == 400
        assert (await client.get("/api/events", params={"kind": "nope"})).status_code == 400
        bad = await client.get("/api/events", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 400 and "cursor" in bad.json()["detail"]
        assert (await client.get("/api/events", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert not hub.clients


async def test_the_stream_limit_is_a_503_and_a_disconnect_frees_the_stream_at_once(bus):
    hub = make_hub(bus, max_streams=1, keepalive=0.2)
    async with serve(hub) as host, httpx.AsyncClient(base_url=f"http://{host}", headers=AUTH) as client:
        async with client.stream("GET", "/api/events") as r:
            lines = []
            async with asyncio.timeout(5):
                async for line in r.aiter_lines():
                    lines.append(line)
                    if line == ": keep-alive":
                        break
            assert lines[0] == "retry: 2000"
            refused = await client.get("/api/events")
            assert refused.status_code == 503 and refused.headers["retry-after"]
        await until(lambda: not hub.clients and hub._task is None)
        async with client.stream("GET", "/api/events") as r:
            assert r.status_code == 200


async def test_the_jobevents_subscription_over_graphql_transport_ws(bus):
    hub = make_hub(bus)
    job = _jid()
    query = "subscription($j: [String!]) { jobEvents(jobId: $j) { cursor type jobId kind status eta } }"
    async with serve(hub) as host:
        async with ws_connect(
            f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"], additional_headers=AUTH
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"j": [job]}}}
                )
            )
            await until(lambda: hub.live)
            await bus.requested(job, kind="trim")
            await bus.failed(job, reason="cancelled")
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
            await ws.send(json.dumps({"id": "1", "type": "complete"}))
            await until(lambda: not hub.clients)
        events = [m["payload"]["data"]["jobEvents"] for m in got]
        assert [(e["type"], e["status"], e["kind"]) for e in events] == [
            ("job.queued", "queued", "trim"),
            ("job.cancelled", "cancelled", "trim"),
        ]
        assert all(e["jobId"] == job for e in events) and decode_cursor(events[1]["cursor"])

        with pytest.raises(InvalidStatus):  # no token: the handshake is refused
            async with ws_connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"]):
                pass


async def test_the_websocket_transport_keeps_the_graphql_limits(bus):
    hub = make_hub(bus)
    too_many_tokens = "subscription { jobEvents { " + "cursor " * (GRAPHQL_MAX_TOKENS + 100) + "} }"
    async with (
        serve(hub) as host,
        ws_connect(
            f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"], additional_headers=AUTH
        ) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": too_many_tokens}}))
        with pytest.raises(ConnectionClosedError) as closed:  # the parser stopped at the token limit
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    assert f"more than {GRAPHQL_MAX_TOKENS} tokens" in closed.value.rcvd.reason
    assert not hub.clients
