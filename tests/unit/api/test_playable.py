"""A package playable before it completes, downstream of its job.playable: the API's link to its master
playlist (REST and GraphQL), the live event stream's job.playable event and the webhooks' CloudEvent."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from mpr_api.assets.media_links import MediaLinks
from mpr_api.events.directory import JobDirectory
from mpr_api.events.hub import EventHub
from mpr_api.events.settings import EventStreamSettings
from mpr_api.events.stream import JOB_EVENT_STATUS, EventFilter, JobFacts, parse_filter
from mpr_api.jobs.service import JobService
from mpr_api.state import state_of
from mpr_api.webhooks.cloudevents import cloud_event, job_occurrence, read_job_event
from mpr_api.webhooks.model import EVENT_TYPES as WEBHOOK_TYPES
from mpr_api.webhooks.model import WebhookCreate
from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.events import JobPlayable, JobRequested, JobView
from mpr_common.jobs import outcome_id
from mpr_common.streams import WEBHOOK_JOB_SUBJECTS
from tests.fakes import FakeNats
from tests.unit.api.inprocess import in_process_api

TOKEN = "t0ken"
MASTER = "show/p1/master.m3u8"
# /media/s/<expires>.<n>.<mac>/<bucket>/<key>: a signed folder link, made absolute with the request's URL
_SIGNED = re.compile(r"http://mpr\.local/media/s/([^/]+)/([^/]+)/(.+)")


def package(**kw) -> JobView:
    fields = dict(
        id="p1",
        kind="package",
        status="running",
        source_key="show.mp4",
        output_key=MASTER,
        output_bucket="mpr-media-out",
        created_at=1.0,
        updated_at=2.0,
    )
    return JobView(**{**fields, **kw})


@pytest.fixture
def api():
    with in_process_api(TOKEN) as (client, nc, app):
        yield client, nc, state_of(app).get(JobService).links


def _granted(links: MediaLinks, url: str) -> str:
    """The bucket/key a signed link reads, once its token is checked (raises when it does not grant it)."""
    m = _SIGNED.fullmatch(url)
    assert m, url
    token, bucket, key = m.groups()
    links.check(token, bucket, key)
    return f"{bucket}/{key}"


def test_a_playable_package_links_its_master_playlist_as_a_completed_one_links_its_output(api):
    client, nc, links = api
    nc.jobs["p1"] = package(playable_at=50.0, playable_key=MASTER)
    job = client.get("/api/jobs/p1").json()
    assert job["output_url"] is None  # not completed yet …
    assert job["job"]["playable_at"] == 50.0
    assert _granted(links, job["job"]["playable_url"]) == f"mpr-media-out/{MASTER}"  # … but playable

    nc.jobs["p1"] = package(status="completed", finished_at=90.0, playable_at=50.0, playable_key=MASTER)
    done = client.get("/api/jobs/p1").json()
    # the same kind of link: a signed folder link to the same playlist (its media play through it too)
    assert _granted(links, done["job"]["playable_url"]) == _granted(links, done["output_url"])

    nc.jobs["p1"] = package()  # not playable (yet): no link
    assert client.get("/api/jobs/p1").json()["job"]["playable_url"] is None


def test_graphql_shows_when_and_where_a_package_plays(api):
    client, nc, links = api
    nc.jobs["p1"] = package(playable_at=50.0, playable_key=MASTER)
    r = client.post("/graphql", json={"query": '{ job(id: "p1") { status playableAt playableUrl } }'})
    got = r.json()["data"]["job"]
    assert (got["status"], got["playableAt"]) == ("running", 50.0)
    assert _granted(links, got["playableUrl"]) == f"mpr-media-out/{MASTER}"
    nc.jobs["p2"] = package(id="p2")
    r = client.post("/graphql", json={"query": '{ job(id: "p2") { playableAt playableUrl } }'})
    assert r.json()["data"]["job"] == {"playableAt": None, "playableUrl": None}


# --- the live event stream ---------------------------------------------------------------------------
def _raw(subject: str, payload: bytes, seq: int, headers: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(subject=subject, data=payload, seq=seq, headers=headers)


async def test_the_event_stream_forwards_job_playable_with_the_packages_kind():
    async def unknown(job_id: str) -> JobFacts | None:
        return None

    hub = EventHub(FakeNats(), JobDirectory(unknown), EventStreamSettings())  # type: ignore[arg-type]
    req = JobRequested(job_id="p1", kind="package", source_key="show.mp4")
    await hub.event_of("jobs", _raw(s.JOB_REQUESTED, encode(req), 1, {"Nats-Msg-Id": "p1"}))
    playable = JobPlayable(job_id="p1", output_key=MASTER, output_bucket="mpr-media-out", at=50.0)
    event = await hub.event_of("jobs", _raw(s.JOB_PLAYABLE, encode(playable), 2))
    assert event is not None and (event.type, event.seq) == ("job.playable", 2)
    data = json.loads(event.json)
    assert (data["job_id"], data["kind"], data["status"], data["at"]) == ("p1", "package", "running", 50.0)
    assert (data["output_key"], data["output_bucket"]) == (MASTER, "mpr-media-out")
    assert JOB_EVENT_STATUS["job.playable"] == "running"  # the console's contract: it still encodes
    # a client following the package (or asking for job.playable only) gets it
    assert EventFilter(job_ids=frozenset({"p1"})).matches(event)
    assert parse_filter(types=["job.playable"]).matches(event)
    assert not parse_filter(types=["job.completed"]).matches(event)


# --- webhooks ----------------------------------------------------------------------------------------
async def test_webhooks_send_job_playable_as_a_cloudevent_once_per_run():
    assert s.JOB_PLAYABLE in WEBHOOK_JOB_SUBJECTS  # the webhooks' consumer reads it
    assert "job.playable" in WEBHOOK_TYPES
    assert decode(b'{"url": "https://hooks.example.com/x", "types": ["job.playable"]}', WebhookCreate)

    playable = JobPlayable(job_id="p1", output_key=MASTER, output_bucket="mpr-media-out", at=1700000000.0)
    type_, event = read_job_event(s.JOB_PLAYABLE, encode(playable))
    assert type_ == "job.playable"

    async def lookup(job_id: str, seq: int) -> JobView:
        return package()

    occ = await job_occurrence(type_, event, outcome_id("playable", "p1", 0), 7, lookup)
    again = await job_occurrence(type_, event, outcome_id("playable", "p1", 0), 9, lookup)
    assert occ is not None and again is not None and occ.fact == again.fact  # one delivery id per run
    retried = await job_occurrence(type_, event, outcome_id("playable", "p1", 1), 12, lookup)
    assert retried is not None and retried.fact != occ.fact
    body = json.loads(cloud_event(occ, "d" * 32))
    assert (body["type"], body["subject"], body["source"]) == ("io.mpr.job.playable", "p1", "/mpr/jobs")
    assert body["data"]["output_key"] == MASTER and body["data"]["kind"] == "package"
