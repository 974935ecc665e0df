"""CORS for web players on other origins: on the token-bound playback routes (signed media links, AES-128
key URIs, ClearKey licences) only, for the origins of API_PLAYER_ORIGINS, never with credentials; every
other route gets no CORS header and no preflight granted (hypothesis: any Origin header, any setting)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from mpr_api.assets.licenses import b64url
from mpr_api.http.origins import parse_origin, parse_origins
from mpr_api.http.player_cors import (
    EXPOSED_HEADERS,
    MAX_AGE_SECONDS,
    PLAYBACK_PREFIXES,
    PLAYBACK_ROUTES,
    PlayerCors,
    merge_headers,
)
from mpr_api.http.settings import PLAYER_ORIGINS_ENV
from mpr_api.settings import ApiSettings
from mpr_common.content_keys import key_uri, license_uri
from tests.unit.api.inprocess import gate_of, keyed_services, serving

TOKEN = "t0ken"
KEY_SECRET = "key-secret"
PLAYER = "https://player.example.com"
OTHER = "https://evil.example.net"


def run(coro):
    return asyncio.run(coro)


def cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


# --- the setting -----------------------------------------------------------------------------------
def test_the_setting_is_read_into_origins_as_browsers_send_them():
    assert ApiSettings().player_origins == {"*"}  # the default: any page may play a link it holds
    read = ApiSettings.from_env(
        {PLAYER_ORIGINS_ENV: " HTTPS://Player.Example.com:443, http://localhost:8080,http://[::1]:80 ,"}
    )
    assert read.player_origins == {PLAYER, "http://localhost:8080", "http://[::1]"}
    assert ApiSettings.from_env({PLAYER_ORIGINS_ENV: ""}).player_origins == frozenset()  # own origin only
    assert ApiSettings.from_env({PLAYER_ORIGINS_ENV: " * "}).player_origins == {"*"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"*,{PLAYER}", "not both"),
        (PLAYER + "/", "no path"),
        (PLAYER + "/player", "no path"),
        (PLAYER + "?x=1", "no path"),
        ("https://user@player.example.com", "user name"),
        ("player.example.com", r"scheme://host\[:port\]"),
        ("null", r"scheme://host\[:port\]"),
        ("ftp://player.example.com", "http or https"),
        ("https://*.example.com", "no wildcards"),
        ("https://", "not a host name"),
        ("https://bad_host.example.com", "not a host name"),
        ("https://player.example.com:0", "port"),
        ("https://player.example.com:99999", "port"),
        ("https://player.example.com:", "port"),
        ("https://plåyer.example.com", "punycode"),
        # addresses a browser would write otherwise (127.0.0.1), so they could never match
        ("http://127.1", "four numbers"),
        ("http://0x7f.0.0.1", "four numbers"),
        ("http://010.0.0.1", "four numbers"),
        ("http://256.0.0.1", "four numbers"),
        ("http://player.123", "four numbers"),
        ("http://[:]", "IPv6"),
        ("http://[fe80::1%25eth0]", "IPv6"),
    ],
)
def test_a_malformed_setting_stops_the_api_at_start_with_the_reason(value, reason):
    with pytest.raises(ValueError, match=reason) as raised:
        ApiSettings.from_env({PLAYER_ORIGINS_ENV: value})
    assert PLAYER_ORIGINS_ENV in str(raised.value)


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
# a host name's last label is not a number (a browser takes such a host for an IPv4 address)
_last_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hosts = st.one_of(
    st.builds(lambda first, last: ".".join([*first, last]), st.lists(_labels, max_size=3), _last_labels),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_hosts,
    port=st.none() | st.integers(1, 65535),
    upper=st.booleans(),
)
def test_any_origin_is_read_as_a_browser_serializes_it(scheme, host, port, upper):
    written = f"{scheme}://{host}" + ("" if port is None else f":{port}")
    default = {"http": 80, "https": 443}[scheme]
    expected = f"{scheme}://{host.lower()}" + ("" if port in (None, default) else f":{port}")
    assert parse_origin(written.upper() if upper else written, PLAYER_ORIGINS_ENV) == expected
    assert parse_origin(expected, PLAYER_ORIGINS_ENV) == expected  # what it gives is read as itself


def test_an_ipv6_address_is_read_compressed_as_browsers_send_it():
    assert parse_origin("http://[0:0:0:0:0:0:0:1]:8080", PLAYER_ORIGINS_ENV) == "http://[::1]:8080"
    assert parse_origin("https://[2001:DB8:0::1]", PLAYER_ORIGINS_ENV) == "https://[2001:db8::1]"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.text(alphabet="htps:/[]*.@?#%:-_0123456789abcXYZ ", max_size=40),
            st.builds(lambda a, b: f"https://{a}{b}", st.text(max_size=12), st.text(max_size=12)),
        ),
        max_size=4,
    ).map(",".join)
)
def test_any_setting_is_either_origins_or_a_clear_error_never_anything_else(raw):
    try:
        origins = ApiSettings.from_env({PLAYER_ORIGINS_ENV: raw}).player_origins
    except ValueError as error:
        assert str(error).startswith(PLAYER_ORIGINS_ENV + ":")
        return
    for origin in origins:
        assert origin == "*" or parse_origin(origin, PLAYER_ORIGINS_ENV) == origin
    assert parse_origins(origins, PLAYER_ORIGINS_ENV) == origins


# --- the playback routes, in process -----------------------------------------------------------------
def _client(origins: frozenset[str]):
    settings_ = ApiSettings(
        tokens=frozenset({TOKEN}),
        media_secret="media-secret",
        key_secret=KEY_SECRET,
        player_origins=origins,
    )
    named, assets, store = keyed_services(settings_)
    key = run(store.create("p1", "cenc", "out", "shows/ep1/p1"))
    record = run(store.record("p1"))
    assert record is not None and record.kid is not None
    return settings_, named, assets, key, bytes.fromhex(record.kid)


@pytest.fixture(scope="module")
def listed():
    """An API that lets PLAYER play (and nobody else), with one cenc package."""
    settings_, named, assets, key, kid = _client(frozenset({PLAYER}))
    with serving(settings_, named) as app, TestClient(app, base_url="http://mpr.local") as client:
        yield client, assets, key, kid, app


def _licence(kid: bytes) -> bytes:
    return json.dumps({"kids": [b64url(kid)], "type": "temporary"}).encode()


def _preflight(client, path, origin=PLAYER, method="POST", headers="content-type", **extra):
    asked = {"Origin": origin, "Access-Control-Request-Method": method, **extra}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=asked)


def test_a_licence_preflight_and_request_from_an_allowed_origin_get_the_grant(listed):
    client, assets, key, kid, _ = listed
    pre = _preflight(client, license_uri("p1"))
    assert pre.status_code == 204, pre.text
    assert pre.headers["access-control-allow-origin"] == PLAYER
    assert pre.headers["access-control-allow-methods"] == "POST"
    assert "content-type" in pre.headers["access-control-allow-headers"].lower()
    assert pre.headers["access-control-max-age"] == str(MAX_AGE_SECONDS)
    assert pre.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in pre.headers
    token = assets.keys.tokens.token("p1", int(time.time()) + 60)
    r = client.post(
        f"{license_uri('p1')}?token={token}",
        content=_licence(kid),
        headers={"Origin": PLAYER, "Content-Type": "application/json"},
    )
    assert r.status_code == 200 and r.json()["keys"][0]["k"] == b64url(key)
    assert r.headers["access-control-allow-origin"] == PLAYER
    assert r.headers["access-control-expose-headers"] == ", ".join(EXPOSED_HEADERS)
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers


def test_signed_links_and_key_uris_are_granted_their_own_methods(listed):
    client, assets, *_ = listed
    for path, method, methods in (
        ("/media/s/1.2.forged/out/shows/ep1/p1/master.m3u8", "GET", "GET, HEAD"),
        (key_uri("p1"), "GET", "GET"),
    ):
        pre = _preflight(client, path, method=method, headers="range")
        assert pre.status_code == 204 and pre.headers["access-control-allow-methods"] == methods
        # a method the route does not take, or a header a player does not send, is not granted
        for refused in (
            _preflight(client, path, method="DELETE"),
            _preflight(client, path, method=method, headers="x-mpr-csrf"),
        ):
            assert refused.status_code == 403 and "preflight refused" in refused.json()["detail"]
            assert not cors_headers(refused)
    # an error is readable by the player too: it tells a refused link from a network failure
    forged = client.get("/media/s/1.2.forged/out/shows/ep1/p1/master.m3u8", headers={"Origin": PLAYER})
    assert forged.status_code == 403 and forged.headers["access-control-allow-origin"] == PLAYER
    aes_missing = client.get(key_uri("p1"), headers={"Origin": PLAYER})
    assert aes_missing.status_code == 401 and aes_missing.headers["access-control-allow-origin"] == PLAYER


def test_another_origin_gets_no_grant(listed):
    client, assets, _, kid, _ = listed
    for origin in (OTHER, "null", PLAYER + ":443", PLAYER.upper(), "http://player.example.com"):
        pre = _preflight(client, license_uri("p1"), origin=origin)
        assert pre.status_code == 403 and "API_PLAYER_ORIGINS" in pre.json()["detail"]
        assert not cors_headers(pre) and pre.headers["vary"] == "Origin"
    token = assets.keys.tokens.token("p1", int(time.time()) + 60)
    # the answer is made (CORS binds browsers, and the token is what is checked) but no page may read it
    r = client.post(f"{license_uri('p1')}?token={token}", content=_licence(kid), headers={"Origin": OTHER})
    assert r.status_code == 200 and not cors_headers(r) and r.headers["vary"] == "Origin"


def test_a_session_cookie_never_stands_for_a_playback_token(listed):
    client, assets, _, kid, app = listed
    cookie = gate_of(app).sessions.sign_in(TOKEN)
    assert cookie is not None
    for r in (
        client.get(key_uri("p1"), headers={"Origin": PLAYER, "Cookie": f"mpr_session={cookie}"}),
        client.post(
            license_uri("p1"),
            content=_licence(kid),
            headers={"Origin": PLAYER, "Cookie": f"mpr_session={cookie}"},
        ),
    ):
        assert r.status_code == 401 and "access-control-allow-credentials" not in r.headers
    # the route never sees a cookie at all
    scope = {
        "type": "http",
        "path": key_uri("p1"),
        "headers": [(b"cookie", b"a=b"), (b"origin", PLAYER.encode())],
    }

    async def send(_message):
        return None

    PlayerCors({PLAYER}).watch(scope, send)  # type: ignore[arg-type]
    assert scope["headers"] == [(b"origin", PLAYER.encode())]


def _example_path(template: str) -> str:
    return re.sub(r"\{[^}]*\}", "x", template)


def test_no_other_route_gets_a_cors_header_or_a_granted_preflight(listed):
    """Fails if CORS were applied to the whole app: every route outside the playback prefixes, asked by
    an allowed origin, with and without a bearer token."""
    client, _, _, _, app = listed
    paths = sorted({_example_path(r.path) for r in app.routes} - {"/"})
    others = [p for p in paths if not p.startswith(PLAYBACK_PREFIXES)]
    assert {"/api/jobs", "/graphql", "/console", "/media/out/x", "/media/in/x"} <= set(others)
    for path in others:
        for auth in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            pre = _preflight(client, path, method="POST", headers="content-type, x-mpr-csrf", **auth)
            assert not cors_headers(pre), (path, pre.status_code)
            plain = client.get(path, headers={"Origin": PLAYER, **auth}, follow_redirects=False)
            assert not cors_headers(plain), (path, plain.status_code)
            assert "origin" not in plain.headers.get("vary", "").lower(), path


def test_the_routes_take_exactly_the_methods_their_preflight_grants(listed):
    *_, app = listed
    declared: dict[str, set[str]] = {}
    for route in app.routes:
        for prefix, _ in PLAYBACK_ROUTES:
            if route.path.startswith(prefix):
                declared.setdefault(prefix, set()).update(set(route.methods) - {"OPTIONS"})
    assert declared == {prefix: set(methods) for prefix, methods in PLAYBACK_ROUTES}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    origin=st.one_of(
        st.just(PLAYER),
        st.binary(max_size=60).filter(lambda b: not set(b) & set(b"\r\n\x00")),
        st.builds(lambda s: PLAYER + s, st.text(alphabet=":/.0123456789aA ", max_size=6)),
    )
)
def test_only_a_listed_origin_is_echoed_whatever_the_origin_header(listed, origin):
    client, assets, *_ = listed
    origin_bytes = origin if isinstance(origin, bytes) else origin.encode()
    token = assets.keys.tokens.token("p1", int(time.time()) + 60)
    r = client.get(f"{key_uri('p1')}?token={token}", headers=[(b"origin", origin_bytes)])
    pre = client.options(
        key_uri("p1"), headers=[(b"origin", origin_bytes), (b"access-control-request-method", b"GET")]
    )
    granted = origin_bytes == PLAYER.encode()
    assert r.status_code == 200 and pre.status_code == (204 if granted else 403)
    for answer in (r, pre):
        if granted:
            assert answer.headers["access-control-allow-origin"] == PLAYER
        else:
            assert not cors_headers(answer)
        assert "access-control-allow-credentials" not in answer.headers


def test_by_default_any_origin_may_play_and_empty_means_none():
    for origins, expected in ((frozenset({"*"}), "*"), (frozenset(), None)):
        settings_, named, assets, _, kid = _client(origins)
        with serving(settings_, named) as app, TestClient(app, base_url="http://mpr.local") as client:
            token = assets.keys.tokens.token("p1", int(time.time()) + 60)
            pre = _preflight(client, license_uri("p1"), origin="null")  # a sandboxed frame's player
            r = client.post(
                f"{license_uri('p1')}?token={token}", content=_licence(kid), headers={"Origin": OTHER}
            )
            assert r.status_code == 200
            assert r.headers.get("access-control-allow-origin") == expected
            assert pre.status_code == (204 if expected else 403)
            assert pre.headers.get("access-control-allow-origin") == expected
            assert "vary" not in r.headers if expected else r.headers["vary"] == "Origin"
            # and the API's own routes still get none
            api = _preflight(client, "/api/jobs")
            assert api.status_code == 401 and not cors_headers(api)


@pytest.mark.parametrize(
    ("answer", "vary"),
    [
        ([], b"Origin"),
        ([(b"vary", b"Accept-Encoding"), (b"Vary", b"X-Origin-Id")], b"Accept-Encoding, X-Origin-Id, Origin"),
        ([(b"vary", b"accept-encoding, origin")], b"accept-encoding, origin"),
        ([(b"vary", b"*")], b"*"),
    ],
)
def test_an_answers_own_vary_is_kept_and_origin_named_once(answer, vary):
    headers = [*answer, (b"access-control-allow-origin", b"*"), (b"content-type", b"text/plain")]
    extra = [(b"vary", b"Origin"), (b"access-control-allow-origin", PLAYER.encode())]
    merged = merge_headers(headers, extra)
    assert [v for n, v in merged if n.lower() == b"vary"] == [vary]
    assert [v for n, v in merged if n == b"access-control-allow-origin"] == [PLAYER.encode()]
    assert (b"content-type", b"text/plain") in merged
