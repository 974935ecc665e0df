"""The API in process (Litestar's test client) over a fake NATS: what it publishes, how it answers
from JetStream's acknowledgement, and how errors map to HTTP and GraphQL."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.jobs.service import queued_view
from mpr_api.settings import ApiSettings
from mpr_api.state import state_of
from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.events import JobCompleted, JobRequested, JobView
from mpr_common.presets import DEFAULT_PRESET
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import gate_of, in_process_api, serving

TOKEN = "t0ken"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api():
    with in_process_api(TOKEN) as (client, nc, app):
        yield client, nc


def test_a_job_is_answered_from_the_acknowledgement_without_asking_the_catalog(api):
    client, nc = api
    r = client.post("/api/jobs", json={"kind": "thumbnail", "source_key": "a/b.mp4", "start": 1})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["status"] == "queued" and job["preset"] == DEFAULT_PRESET["thumbnail"] and job["output_key"]
    assert r.headers["location"] == f"/api/jobs/{job['id']}"
    [(subject, payload, headers)] = nc.js.published
    assert subject == s.JOB_REQUESTED and headers["Nats-Msg-Id"] == job["id"]
    assert decode(payload, JobRequested).output_key == job["output_key"]
    assert nc.requests == []  # one route: the catalog learns of the job from the stream only


def test_a_repeated_job_id_returns_the_stored_job(api):
    client, nc = api
    client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4", "job_id": "mine-1"})
    nc.jobs["mine-1"] = queued_view(decode(nc.js.published[0][1], JobRequested))  # as the catalog has it
    again = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4", "job_id": "mine-1"})
    assert again.status_code == 200 and again.json()["job"]["id"] == "mine-1"
    subject, q = nc.requests[-1]
    assert subject == s.CATALOG_JOB_GET and q.after_seq == 1  # read once ingested up to the original


def test_bad_input_is_a_400_with_the_reason(api):
    client, nc = api
    r = client.post("/api/jobs", json={"kind": "trim", "source_key": "a.mp4"})
    assert r.status_code == 400 and "start" in r.json()["detail"]
    r = client.post("/api/jobs", json={"kind": "transcode", "source_key": "../etc/passwd.mp4"})
    assert r.status_code == 400 and "source_key" in r.json()["detail"]
    r = client.post("/api/jobs", json={"kind": "nope", "source_key": "a.mp4"})
    assert r.status_code == 400
    assert nc.js.published == []


def test_an_unconfirmed_publish_is_a_503(api):
    client, nc = api
    nc.js.fail = True
    r = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4"})
    assert r.status_code == 503 and "job queue" in r.json()["detail"]


def test_service_error_codes_map_to_http_and_graphql(api):
    client, _ = api
    r = client.get("/api/jobs/unknown")
    assert r.status_code == 404 and r.json()["detail"] == "job unknown not found"
    g = client.post("/graphql", json={"query": 'mutation { cancelJob(id: "unknown") { id } }'})
    assert g.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    g = client.post("/graphql", json={"query": '{ job(id: "unknown") { id } }'})
    assert g.json()["data"]["job"] is None
    g = client.post(
        "/graphql", json={"query": 'mutation { submitJob(job: {kind: trim, sourceKey: "a.mp4"}) { id } }'}
    )
    assert g.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_a_token_is_required(api):
    client, _ = api
    r = client.get("/api/jobs/x", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert client.get("/health/live", headers={"Authorization": ""}).status_code == 200


def test_callbacks_need_the_token_issued_when_that_job_was_dispatched_to_lambda(api):
    client, nc = api
    lam = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4", "executor": "lambda"}).json()
    other = client.post(
        "/api/jobs", json={"kind": "audio", "source_key": "b.mp4", "executor": "lambda"}
    ).json()
    work = client.post("/api/jobs", json={"kind": "audio", "source_key": "c.mp4"}).json()
    assert lam["callback_token"] and other["callback_token"] and work["callback_token"] is None
    assert [p[0] for p in nc.js.published] == [s.JOB_DISPATCHED, s.JOB_DISPATCHED, s.JOB_REQUESTED]
    for out in (lam, other, work):
        nc.jobs[out["job"]["id"]] = decode(encode(out["job"]), JobView)
    done = {"status": "completed", "output_key": lam["job"]["output_key"]}  # its own output only

    def callback(job_id: str, token: str | None, body=done):
        headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
        return client.post(f"/api/jobs/{job_id}/callback", json=body, headers=headers)

    lam_id = lam["job"]["id"]
    assert callback(lam_id, TOKEN).status_code == 401  # an API token is not a callback credential
    assert callback(lam_id, None).status_code == 401
    assert callback(lam_id, other["callback_token"]).status_code == 401  # another job's token
    assert callback(work["job"]["id"], lam["callback_token"]).status_code == 401  # not dispatched there
    r = callback(lam_id, lam["callback_token"], {**done, "output_bucket": "private-bucket"})
    assert r.status_code == 400 and "fixed by configuration" in r.json()["detail"]
    published = len(nc.js.published)
    assert callback(lam_id, lam["callback_token"]).status_code == 200
    ((subject, payload, _),) = nc.js.published[published:]
    assert subject == s.JOB_COMPLETED and decode(payload, JobCompleted).output_bucket == "mpr-media-out"


def test_callback_tokens_are_bound_to_a_job_and_expire():
    from mpr_api.jobs.callbacks import CallbackTokens

    tokens = CallbackTokens(b"secret", ttl=60)
    t = tokens.issue("job-1", now=1000)
    assert tokens.valid("job-1", t, now=1059)
    assert not tokens.valid("job-1", t, now=1061)  # expired
    assert not tokens.valid("job-2", t, now=1001)
    assert not CallbackTokens(b"other", ttl=60).valid("job-1", t, now=1001)
    expires, _, mac = t.partition(".")
    assert not tokens.valid("job-1", f"{int(expires) + 3600}.{mac}", now=1001)  # a longer life forged
    assert not tokens.valid("job-1", "garbage", now=1001)


def test_an_output_belongs_to_one_job(api):
    client, nc = api
    body = {"kind": "audio", "source_key": "a.mp4", "output_key": "shared/out.m4a"}
    first = client.post("/api/jobs", json={**body, "job_id": "first"})
    assert first.status_code == 202
    taken = client.post("/api/jobs", json={**body, "job_id": "second"})
    assert taken.status_code == 409 and "belongs to job first" in taken.json()["detail"]
    nc.jobs["first"] = decode(encode(first.json()["job"]), JobView)
    assert client.post("/api/jobs", json={**body, "job_id": "first"}).status_code == 200  # the owner retrying
    assert [p[0] for p in nc.js.published].count(s.JOB_REQUESTED) == 1  # stored once; the refused one never


def test_media_links_are_only_for_media(api):
    client, _ = api
    for path in ("/media/in/private/notes.txt", "/media/out/backup.sql", "/media/in/.env"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code in (400, 404) and r.json()["detail"], path


def test_assets_are_searched_by_prefix_and_by_a_part_of_the_name(api):
    client, nc = api
    r = client.get("/api/assets", params={"prefix": "shows/", "name": "Interview"})
    assert r.status_code == 200, r.text
    (subject, q), *_ = [(sub, q) for sub, q in nc.requests if sub == s.CATALOG_ASSETS_LIST]
    assert (q.prefix, q.name) == ("shows/", "Interview")
    assert client.get("/api/assets", params={"name": "x" * 5000}).status_code == 400


def test_tests_that_share_an_app_see_nothing_of_each_other():
    """The helper every in-process test builds its API with (inprocess.serving): one app per settings,
    each test's own fakes, services and authentication throttle while it runs, none after."""
    settings = ApiSettings(tokens=frozenset({TOKEN}))
    first, second = FakeNats(), FakeNats()
    job = {"kind": "audio", "source_key": "a.mp4"}
    with serving(settings, services(settings, first, FakeKV(), public_s3=None)) as app:
        with TestClient(app, base_url="http://mpr.local") as client:
            assert client.get("/api/jobs", headers={"Authorization": "Bearer guess"}).status_code == 401
            assert client.post("/api/jobs", json=job, headers=BEARER).status_code == 202
        assert len(gate_of(app).throttle) == 1 and len(first.js.published) == 1
        with serving(settings, services(settings, FakeNats(), FakeKV(), public_s3=None)) as beside:
            assert beside is not app  # the shared one is in use: another of its own
    assert state_of(app).nc is None and state_of(app).services == {}
    with serving(settings, services(settings, second, FakeKV(), public_s3=None)) as again:
        assert again is app and len(gate_of(app).throttle) == 0
        with TestClient(app, base_url="http://mpr.local") as client:
            assert client.post("/api/jobs", json=job, headers=BEARER).status_code == 202
    assert len(first.js.published) == 1 and len(second.js.published) == 1
