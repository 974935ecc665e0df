"""Guessing credentials is throttled per client (auth.AuthThrottle), in process: wrong bearer tokens,
forged session cookies, refused WebSocket handshakes and console sign-ins each spend one of the client's
API_AUTH_FAILURES_PER_MINUTE; then a 429 with Retry-After, for a valid token too, until the bucket
refills; valid traffic spends nothing; other clients are not affected; memory stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.console.feature import console_state
from mpr_api.http.auth import SESSION_COOKIE, AuthThrottle
from mpr_api.settings import ApiSettings
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import gate_of, serving

TOKEN = "t0ken"
PER_MINUTE = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def api_client(**settings_kw) -> Iterator[TestClient]:
    settings = ApiSettings(tokens=frozenset({TOKEN}), auth_failures_per_minute=PER_MINUTE, **settings_kw)
    state = services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())
    state.update(console_state(settings, state["assets"]))
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as c:
        yield c


@pytest.fixture
def client():
    with api_client() as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def throttle_of(client: TestClient) -> AuthThrottle:
    return gate_of(client.app).throttle


def test_wrong_tokens_are_401_then_429_with_retry_after_and_a_valid_token_waits_too(client):
    for _ in range(PER_MINUTE):
        assert client.get("/api/jobs", headers=bearer("guess")).status_code == 401
    r = client.get("/api/jobs", headers=bearer("guess"))
    assert r.status_code == 429 and "too many failed" in r.json()["detail"]
    assert int(r.headers["retry-after"]) >= 1
    # answering a right guess now would tell the guesser it was right
    assert client.get("/api/jobs", headers=bearer(TOKEN)).status_code == 429
    assert client.get("/health/live").status_code == 200  # what needs no credential is not throttled


def test_the_bucket_refills_at_the_configured_rate():
    clock = Clock()
    throttle = AuthThrottle(PER_MINUTE, clock=clock)
    scope = {"type": "http", "client": ("203.0.113.7", 1234), "headers": []}
    for _ in range(PER_MINUTE):
        assert throttle.retry_after(scope) is None
        throttle.failed(scope)
    wait = throttle.retry_after(scope)
    assert wait == 60 // PER_MINUTE
    clock.now += wait
    assert throttle.retry_after(scope) is None  # one more try …
    throttle.failed(scope)
    assert throttle.retry_after(scope) == 60 // PER_MINUTE  # … and the wait again
    clock.now += 3600
    for _ in range(PER_MINUTE):  # a full bucket again, never more
        assert throttle.retry_after(scope) is None
        throttle.failed(scope)
    assert throttle.retry_after(scope) is not None


def test_valid_tokens_spend_nothing(client):
    for _ in range(10 * PER_MINUTE):
        assert client.get("/api/jobs", headers=bearer(TOKEN)).status_code == 200
    assert len(throttle_of(client)) == 0


def test_a_missing_token_is_not_a_guess(client):
    for _ in range(3 * PER_MINUTE):
        assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers=bearer(TOKEN)).status_code == 200


def test_clients_are_throttled_apart():
    throttle = AuthThrottle(PER_MINUTE, clock=Clock())
    a = {"type": "http", "client": ("198.51.100.1", 1), "headers": []}
    b = {"type": "http", "client": ("198.51.100.2", 1), "headers": []}
    for _ in range(PER_MINUTE):
        throttle.failed(a)
    assert throttle.retry_after(a) is not None and throttle.retry_after(b) is None


def test_an_ipv6_client_counts_per_64_and_a_forwarded_header_only_when_configured():
    throttle = AuthThrottle(PER_MINUTE, clock=Clock())
    for i in range(PER_MINUTE):  # a host spraying addresses of its /64
        throttle.failed({"type": "http", "client": (f"2001:db8::{i + 1:x}", 1), "headers": []})
    assert throttle.retry_after({"type": "http", "client": ("2001:db8::ffff", 1), "headers": []}) is not None
    forged = [(b"x-forwarded-for", b"192.0.2.99")]
    untrusting = AuthThrottle(PER_MINUTE)
    assert untrusting.client({"type": "http", "client": ("10.0.0.1", 1), "headers": forged}) == "10.0.0.1"
    proxied = AuthThrottle(PER_MINUTE, client_header="X-Forwarded-For")
    headers = [(b"x-forwarded-for", b"192.0.2.1, 192.0.2.99")]  # the proxy appended the last one
    assert proxied.client({"type": "http", "client": ("10.0.0.1", 1), "headers": headers}) == "192.0.2.99"


def test_the_forwarded_header_is_used_when_configured():
    with api_client(client_address_header="X-Forwarded-For") as c:
        for _ in range(PER_MINUTE):
            c.get("/api/jobs", headers={**bearer("guess"), "X-Forwarded-For": "192.0.2.1"})
        assert (
            c.get("/api/jobs", headers={**bearer(TOKEN), "X-Forwarded-For": "192.0.2.1"}).status_code == 429
        )
        assert (
            c.get("/api/jobs", headers={**bearer(TOKEN), "X-Forwarded-For": "192.0.2.2"}).status_code == 200
        )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.ip_addresses().map(str), min_size=1, max_size=300))
def test_memory_stays_bounded_whatever_addresses_fail(addresses):
    throttle = AuthThrottle(PER_MINUTE, max_clients=64, clock=Clock())
    for address in addresses:
        throttle.failed({"type": "http", "client": (address, 1), "headers": []})
        assert len(throttle) <= 64


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.text(max_size=60)))
def test_any_forwarded_header_or_peer_gives_a_bounded_client_key(header, peer):
    throttle = AuthThrottle(PER_MINUTE, client_header="X-Forwarded-For")
    scope = {
        "type": "http",
        "client": (peer, 1) if peer is not None else None,
        "headers": [(b"x-forwarded-for", header)],
    }
    assert len(throttle.client(scope)) <= 64


def test_console_sign_ins_are_throttled(client):
    for _ in range(PER_MINUTE):
        r = client.post(
            "/console/sign-in", data={"token": "guess", "next": "/console"}, follow_redirects=False
        )
        assert r.status_code == 401
    r = client.post("/console/sign-in", data={"token": TOKEN, "next": "/console"}, follow_redirects=False)
    assert r.status_code == 429 and r.headers["retry-after"]


def test_a_good_sign_in_spends_nothing(client):
    for _ in range(3 * PER_MINUTE):
        r = client.post("/console/sign-in", data={"token": TOKEN, "next": "/console"}, follow_redirects=False)
        assert r.status_code == 303
    assert len(throttle_of(client)) == 0


def test_forged_session_cookies_are_throttled(client):
    for _ in range(PER_MINUTE):
        client.cookies.set(SESSION_COOKIE, "9999999999.sid.fp.forged")
        assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs").status_code == 429


def test_websocket_handshakes_with_a_wrong_token_are_throttled(client):
    def handshake(token: str) -> int:
        try:
            with client.websocket_connect(
                "/graphql", subprotocols=["graphql-transport-ws"], headers=bearer(token)
            ) as ws:
                ws.close()
                return 1000
        except WebSocketDisconnect as exc:
            return exc.code

    for _ in range(PER_MINUTE):
        assert handshake("guess") == 1008
    assert handshake(TOKEN) == 1013  # try again later
    assert client.get("/api/jobs", headers=bearer(TOKEN)).status_code == 429


def test_the_throttle_is_off_with_zero():
    settings = ApiSettings(tokens=frozenset({TOKEN}), auth_failures_per_minute=0)
    state = services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as c:
        for _ in range(30):
            assert c.get("/api/jobs", headers=bearer("guess")).status_code == 401
        assert c.get("/api/jobs", headers=bearer(TOKEN)).status_code == 200


def test_clients_whose_bucket_is_full_again_are_forgotten():
    clock = Clock()
    throttle = AuthThrottle(PER_MINUTE, clock=clock)
    throttle.failed({"type": "http", "client": ("192.0.2.1", 1), "headers": []})
    clock.now += 60  # refilled: remembering it says nothing
    throttle.failed({"type": "http", "client": ("192.0.2.2", 1), "headers": []})
    assert len(throttle) == 1


def test_a_negative_limit_is_refused_at_start():
    with pytest.raises(ValueError, match="API_AUTH_FAILURES_PER_MINUTE"):
        ApiSettings(auth_failures_per_minute=-1)
