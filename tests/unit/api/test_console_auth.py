"""The console's session cookie in process: signing in and out, what the cookie is accepted for, and what
is refused (forged, expired, revoked cookies; changes without the CSRF header; cross-site sign-ins)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.console.feature import console_state
from mpr_api.console.pages import safe_next
from mpr_api.http.auth import (
    CSRF_HEADER,
    SECURE_SESSION_COOKIE,
    SESSION_COOKIE,
    Sessions,
    cookie_value,
    derived_key,
)
from mpr_api.settings import ApiSettings
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import serving

TOKEN = "console-t0ken"
OTHER = "other-t0ken"


@contextmanager
def make_client(
    tokens=frozenset({TOKEN, OTHER}), base_url="http://mpr.local", **settings_kw
) -> Iterator[TestClient]:
    settings = ApiSettings(tokens=tokens, **settings_kw)
    state = services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())
    state.update(console_state(settings, state["assets"]))
    with serving(settings, state) as app, TestClient(app, base_url=base_url) as client:
        yield client


@pytest.fixture
def client():
    with make_client() as c:
        yield c


def sign_in(client, token=TOKEN, next_="/console/jobs", **kw):
    return client.post("/console/sign-in", data={"token": token, "next": next_}, follow_redirects=False, **kw)


def csrf_of(page: str) -> str:
    m = re.search(r'<meta name="mpr-csrf" content="([^"]*)">', page)
    assert m, "the page carries no CSRF token"
    return m.group(1)


# --- the cookie itself (pure) ------------------------------------------------------------------
def test_a_cookie_holds_a_session_until_it_expires():
    sessions = Sessions(b"k" * 32, ttl=60, tokens=[TOKEN])
    value = sessions.sign_in(TOKEN, now=1000)
    assert value is not None
    session = sessions.check(value, now=1059)
    assert not isinstance(session, str) and session.expires == 1060
    assert session.csrf == sessions.csrf(session.sid) and len(session.csrf) >= 20
    assert "expired" in sessions.check(value, now=1061)


def test_a_wrong_token_gets_no_session():
    sessions = Sessions(b"k" * 32, ttl=60, tokens=[TOKEN])
    assert sessions.sign_in("nope") is None
    assert sessions.sign_in("") is None
    assert sessions.sign_in(TOKEN[:-1]) is None


def test_forged_cookies_are_refused():
    sessions = Sessions(b"k" * 32, ttl=60, tokens=[TOKEN])
    value = sessions.sign_in(TOKEN, now=1000)
    assert value is not None
    expires, sid, fingerprint, mac = value.split(".")
    later = f"{int(expires) + 10**6}.{sid}.{fingerprint}.{mac}"  # a longer life, same MAC
    assert "invalid" in sessions.check(later, now=1000)
    other_key = Sessions(b"x" * 32, ttl=60, tokens=[TOKEN]).sign_in(TOKEN, now=1000)
    assert other_key is not None and "invalid" in sessions.check(other_key, now=1000)
    for junk in ("", "a.b.c", "x.y.z.w", "1.2.3.4.5"):
        assert isinstance(sessions.check(junk, now=1000), str)


def test_removing_a_token_ends_the_sessions_signed_in_with_it():
    old = Sessions(b"k" * 32, ttl=60, tokens=[TOKEN, OTHER])
    value = old.sign_in(OTHER, now=1000)
    assert value is not None
    after = Sessions(b"k" * 32, ttl=60, tokens=[TOKEN])  # API_TOKENS without OTHER, same secret
    assert "no longer accepted" in after.check(value, now=1000)
    kept = old.sign_in(TOKEN, now=1000)
    assert kept is not None and not isinstance(after.check(kept, now=1000), str)


def test_the_derived_key_is_the_same_on_every_replica_and_changes_with_the_tokens():
    assert derived_key([TOKEN, OTHER]) == derived_key([OTHER, TOKEN])
    assert derived_key([TOKEN]) != derived_key([TOKEN, OTHER])
    configured = Sessions.from_settings(ApiSettings(tokens=frozenset({TOKEN}), session_secret="s3cret"))
    derived = Sessions.from_settings(ApiSettings(tokens=frozenset({TOKEN})))
    value = configured.sign_in(TOKEN)
    assert value is not None and isinstance(derived.check(value), str)


def test_cookie_headers_are_parsed_by_name():
    header = b'a=1; mpr_session=abc.def; __Host-mpr_session="xyz"'
    assert cookie_value(header, (SECURE_SESSION_COOKIE, SESSION_COOKIE)) == "xyz"
    assert cookie_value(b"mpr_session=abc", (SECURE_SESSION_COOKIE, SESSION_COOKIE)) == "abc"
    assert cookie_value(b"other=1", (SESSION_COOKIE,)) is None


def test_sign_in_goes_back_to_console_pages_only():
    assert safe_next("/console/jobs?status=failed") == "/console/jobs?status=failed"
    for target in (
        "https://evil.example/",
        "//evil.example/console",
        "/api/jobs",
        "/console\\@evil",
        None,
        "",
    ):
        assert safe_next(target) == "/console/"


# --- through the app -----------------------------------------------------------------------------
def test_signing_in_sets_a_strict_httponly_cookie_and_goes_back(client):
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/console/jobs"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert (
        "Max-Age=43200" in cookie and "Secure" not in cookie
    )  # plain http: a Secure cookie would be dropped
    page = client.get("/console/jobs")
    assert page.status_code == 200 and csrf_of(page.text)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "same-origin"


def test_over_https_the_cookie_is_secure_and_host_only():
    with make_client(base_url="https://mpr.local") as c:
        r = sign_in(c)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{SECURE_SESSION_COOKIE}=") and "Secure" in cookie
        assert "Domain" not in cookie
        assert c.get("/console/jobs", follow_redirects=False).status_code == 200


def test_a_wrong_token_is_refused_with_a_message_next_to_the_field(client):
    r = sign_in(client, token="wrong")
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert 'aria-invalid="true"' in r.text and 'id="token-error"' in r.text
    assert "not accepted" in r.text
    empty = sign_in(client, token=" ")
    assert empty.status_code == 400 and "Enter an API token" in empty.text


def test_a_sign_in_posted_from_another_site_is_refused(client):
    for origin in ("https://evil.example", "null"):  # "null": an opaque origin (a sandboxed frame, data:)
        r = sign_in(client, headers={"Origin": origin})
        assert r.status_code == 403 and "set-cookie" not in r.headers
    assert sign_in(client, headers={"Origin": "http://mpr.local"}).status_code == 303


def test_without_a_session_pages_redirect_to_sign_in_and_the_api_stays_401(client):
    r = client.get("/console/jobs?status=failed", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/sign-in?next=/console/jobs%3Fstatus%3Dfailed"
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/events").status_code == 401
    assert client.post("/api/uploads", json={"key": "a.mp4", "size": 1}).status_code == 401
    # what needs no session: the sign-in page, static files, health
    assert client.get("/console/sign-in").status_code == 200
    assert client.get("/console/static/console.css").status_code == 200


def test_the_cookie_stands_for_a_token_on_the_api(client):
    sign_in(client)
    assert client.get("/api/presets").status_code == 200
    assert client.get("/api/jobs/unknown").status_code == 404  # authenticated, then not found


def test_changes_with_the_cookie_need_the_csrf_header(client):
    sign_in(client)
    csrf = csrf_of(client.get("/console/").text)
    body = {"kind": "audio", "source_key": "a.mp4"}
    refused = client.post("/api/jobs", json=body)
    assert refused.status_code == 403 and CSRF_HEADER in refused.json()["detail"]
    wrong = client.post("/api/jobs", json=body, headers={CSRF_HEADER: csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    ok = client.post("/api/jobs", json=body, headers={CSRF_HEADER: csrf})
    assert ok.status_code == 202, ok.text


def test_a_bearer_token_needs_no_csrf_header_and_wins_over_the_cookie(client):
    sign_in(client)
    r = client.post(
        "/api/jobs",
        json={"kind": "audio", "source_key": "a.mp4"},
        headers={"Authorization": f"Bearer {OTHER}"},
    )
    assert r.status_code == 202
    bad = client.get("/api/presets", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401  # a wrong token is not rescued by a valid cookie


def test_forged_and_expired_cookies_are_refused(client):
    sign_in(client)
    good = client.cookies[SESSION_COOKIE]
    expires, sid, fingerprint, mac = good.split(".")
    for forged in (
        f"{int(expires) + 3600}.{sid}.{fingerprint}.{mac}",
        f"{expires}.{sid}.{fingerprint}.{mac[::-1]}",
    ):
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, forged)
        r = client.get("/api/presets")
        assert r.status_code == 401 and "invalid session" in r.json()["detail"]
        page = client.get("/console/jobs", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].endswith("&expired=1")
    expired = Sessions.from_settings(ApiSettings(tokens=frozenset({TOKEN, OTHER}))).sign_in(TOKEN, now=0)
    assert expired is not None
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, expired)
    r = client.get("/api/presets")
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_the_cookie_is_not_accepted_outside_the_console_api_and_media(client):
    sign_in(client)
    r = client.post("/graphql", json={"query": "{ jobs { id } }"})
    assert r.status_code == 401


def test_signing_out_forgets_the_cookie(client):
    sign_in(client)
    r = client.post("/console/sign-out", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
    assert any(
        c.startswith(f"{SESSION_COOKIE}=") and "Max-Age=0" in c for c in r.headers.get_list("set-cookie")
    )
    assert client.get("/console/jobs", follow_redirects=False).status_code == 303


def test_with_authentication_off_the_console_needs_no_sign_in():
    with make_client(tokens=frozenset()) as c:
        assert c.get("/console/jobs").status_code == 200
        assert "Authentication is off" in c.get("/console/sign-in").text
        r = c.post("/console/sign-in", data={"token": "x", "next": "/console/assets"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/assets"


def test_the_root_leads_to_the_console(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/"


def test_every_page_is_labelled_and_navigable(client):
    sign_in(client)
    for path, title in (
        ("/console/", "Dashboard"),
        ("/console/jobs", "Jobs"),
        ("/console/jobs/new", "New job"),
        ("/console/jobs/job-1", "Job"),
        ("/console/upload", "Upload"),
        ("/console/assets", "Assets"),
        ("/console/assets/" + "0" * 32, "Asset"),
        ("/console/templates", "Templates"),
        ("/console/rules", "Rules"),
        ("/console/webhooks", "Webhooks"),
        ("/console/dead-letters", "Dead letters"),
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert f"<title>{title}" in page.text and 'lang="en"' in page.text
        assert 'name="viewport"' in page.text and 'href="#main"' in page.text
        assert 'aria-current="page"' in page.text, path
        for control in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page.text):
            assert f'for="{control}"' in page.text, f"{path}: #{control} has no label"
    assert client.get("/console/jobs/bad id!").status_code == 404
    assert client.get("/console/assets/not-an-id").status_code == 404
