"""Callback tokens and signed media links refuse any malformed token with a 4xx (never a 500: int()
refuses more than 4,300 digits, and compare_digest a str that is not ASCII); a Lambda callback reports
only its own job's output."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.assets.media_links import LinkRefused, MediaLinks
from mpr_api.jobs.callbacks import CallbackTokens
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.events import JobCompleted, JobView
from mpr_common.outputs import OutputOwners
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import serving

TOKEN = "t0ken"
SECRET = b"callback-secret"
MEDIA_SECRET = "media-secret"
HUGE = "9" * 5000  # more digits than int() converts

# Arbitrary text, and text shaped like a token (digits, dots, base64url and hex characters, non-ASCII
# digits) so that the search reaches past the first split.
token_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="0123456789.abcdef-_ABCDEFxyz²١٣", max_size=120),
    st.builds(
        lambda a, b, c: f"{a}.{b}.{c}",
        st.text(alphabet="0123456789²١", min_size=0, max_size=30),
        st.text(alphabet="0123456789²١", min_size=0, max_size=30),
        st.text(alphabet="abcdefABCDEF0123456789-_é", max_size=40),
    ),
)


@pytest.fixture
def api():
    settings = ApiSettings(
        tokens=frozenset({TOKEN}), callback_secret=SECRET.decode(), media_secret=MEDIA_SECRET
    )
    nc = FakeNats()
    owners_kv = FakeKV()
    state = services(settings, nc, FakeKV(), public_s3=None, owners_kv=owners_kv)
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, nc, owners_kv


# --- callback tokens -------------------------------------------------------------------------------
def test_a_callback_token_with_a_5000_digit_expiry_is_refused_not_a_500(api):
    client, nc, _ = api
    job = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4", "executor": "lambda"}).json()
    nc.jobs[job["job"]["id"]] = decode(encode(job["job"]), JobView)
    mac = job["callback_token"].partition(".")[2]
    for token in (f"{HUGE}.{mac}", f"{HUGE}.{'é' * 64}", f"1.{'é' * 64}", "²³.abc", f"{HUGE}"):
        r = client.post(
            f"/api/jobs/{job['job']['id']}/callback",
            json={"status": "progress"},
            headers={"Authorization": f"Bearer {token}".encode()},  # the server reads latin-1
        )
        assert r.status_code == 401 and r.json()["detail"], (token[:20], r.status_code, r.text[:200])


@settings(max_examples=150, deadline=None)
@given(token=token_text)
def test_only_the_issued_callback_token_is_valid(token):
    tokens = CallbackTokens(SECRET, ttl=60)
    issued = tokens.issue("job-1", now=1000)
    assert tokens.valid("job-1", token, now=1001) is (token == issued)


# --- signed media links ----------------------------------------------------------------------------
def test_a_media_token_with_a_5000_digit_number_is_a_403_not_a_500(api):
    client, _, _ = api
    links = MediaLinks(MEDIA_SECRET.encode(), ttl=3600)
    good = links.token("mpr-media-out", "movie/")
    expires, length, mac = good.split(".")
    for token in (f"{HUGE}.{length}.{mac}", f"{expires}.{HUGE}.{mac}", f"{expires}.{length}.{'é' * 22}"):
        r = client.get(f"/media/s/{token}/mpr-media-out/movie/index.m3u8", headers={"Authorization": ""})
        assert r.status_code == 403 and r.json()["detail"], r.text[:200]


@settings(max_examples=150, deadline=None)
@given(token=token_text, key=st.sampled_from(["movie/index.m3u8", "movie/a/b.ts", "index.m3u8"]))
def test_a_media_token_grants_nothing_unless_it_was_issued_for_that_folder(token, key):
    links = MediaLinks(MEDIA_SECRET.encode(), ttl=3600)
    issued = {links.token("mpr-media-out", "movie/", now=1000), links.token("mpr-media-out", "", now=1000)}
    try:
        links.check(token, "mpr-media-out", key, now=1001)
    except LinkRefused as exc:
        assert exc.code == 403
    else:
        assert token in issued


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=token_text.filter(lambda t: t and "/" not in t and t not in (".", "..")))
def test_no_media_token_makes_a_5xx_over_http(api, token):
    client, _, _ = api
    path = f"/media/s/{quote(token, safe='')}/mpr-media-out/movie/index.m3u8"
    r = client.get(path, headers={"Authorization": ""})
    assert r.status_code in (400, 403, 404), (token, r.status_code, r.text[:200])


# --- a callback reports its own job's output ---------------------------------------------------------
def _lambda_job(client, nc, job_id: str, **extra) -> tuple[dict, dict[str, str]]:
    body = {"kind": "audio", "source_key": f"{job_id}.mp4", "executor": "lambda", "job_id": job_id, **extra}
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    out = r.json()
    nc.jobs[job_id] = decode(encode(out["job"]), JobView)
    return out["job"], {"Authorization": f"Bearer {out['callback_token']}"}


def test_a_callback_cannot_claim_another_jobs_output(api):
    client, nc, _ = api
    victim, _ = _lambda_job(client, nc, "victim", output_key="private/victim.m4a")
    mine, auth = _lambda_job(client, nc, "mine")
    published = len(nc.js.published)
    for key in (victim["output_key"], "somewhere/unclaimed.m4a"):
        r = client.post(
            "/api/jobs/mine/callback", json={"status": "completed", "output_key": key}, headers=auth
        )
        assert r.status_code == 409 and "not an output of job mine" in r.json()["detail"], r.text
    r = client.post(
        "/api/jobs/mine/callback",
        json={"status": "completed", "output_key": mine["output_key"], "output_keys": [victim["output_key"]]},
        headers=auth,
    )
    assert r.status_code == 400 and "not in the folder" in r.json()["detail"]
    assert len(nc.js.published) == published  # nothing recorded for any of them

    r = client.post(
        "/api/jobs/mine/callback",
        json={"status": "completed", "output_key": mine["output_key"]},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    [(subject, payload, _)] = nc.js.published[published:]
    assert subject == s.JOB_COMPLETED and decode(payload, JobCompleted).output_key == mine["output_key"]


def test_the_victims_output_is_named_as_another_jobs(api):
    client, nc, _ = api
    _lambda_job(client, nc, "victim", output_key="private/victim.m4a")
    _, auth = _lambda_job(client, nc, "mine")
    r = client.post(
        "/api/jobs/mine/callback",
        json={"status": "completed", "output_key": "private/victim.m4a"},
        headers=auth,
    )
    assert r.status_code == 409 and "belongs to job victim" in r.json()["detail"]


async def test_a_key_the_job_claimed_is_its_own(api):
    client, nc, owners_kv = api
    job, auth = _lambda_job(client, nc, "mine")
    owners = OutputOwners(owners_kv)
    assert await owners.owner("mpr-media-out", "elsewhere/mine.m4a") is None
    assert await owners.claim("mpr-media-out", "elsewhere/mine.m4a", "mine") is None
    assert await owners.owner("mpr-media-out", "elsewhere/mine.m4a") == "mine"
    r = client.post(
        "/api/jobs/mine/callback",
        json={"status": "completed", "output_key": "elsewhere/mine.m4a"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
