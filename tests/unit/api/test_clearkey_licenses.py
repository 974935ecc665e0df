"""ClearKey licences of cenc packages: the EME request read for shape (hypothesis: any body, any token
is a 4xx with a message, never a 500), the key answered only to a playback token of that package and
only for its own KID; licence URLs given a token only in the package's own folder."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from mpr_api.assets.licenses import b64url, license_response, parse_license_request
from mpr_api.settings import ApiSettings
from mpr_common.content_keys import LICENSE_DATA_ID, license_uri
from mpr_common.errors import BadRequest
from tests.unit.api.inprocess import keyed_services, serving

TOKEN = "t0ken"
KEY_SECRET = "key-secret"
FOLDER = "shows/ep1/p1"


def run(coro):
    return asyncio.run(coro)


def _request(*kids: bytes, kind: str = "temporary") -> bytes:
    return json.dumps({"kids": [b64url(k) for k in kids], "type": kind}).encode()


def test_a_licence_request_names_its_kids_in_base64url():
    kid = bytes(range(16))
    assert parse_license_request(_request(kid)) == [kid]
    assert parse_license_request(json.dumps({"kids": [b64url(kid) + "=="]}).encode()) == [kid]
    for body, reason in (
        (b"{", "JSON"),
        (b"[]", "JSON object"),
        (b'{"kids": []}', "names the KIDs"),
        (b'{"kids": "abc"}', "names the KIDs"),
        (b'{"kids": [12]}', "base64url"),
        (json.dumps({"kids": [base64.b64encode(b"\xff" * 16).decode()]}).encode(), "base64url"),
        (json.dumps({"kids": [b64url(b"short")]}).encode(), "base64url"),
        (_request(kid, kind="persistent-license"), "temporary"),
        (_request(*[kid] * 17), "at most 16"),
        (b" " * 5000, "at most"),
    ):
        with pytest.raises(BadRequest, match=reason):
            parse_license_request(body)


def test_the_answer_holds_the_key_only_for_its_own_kid():
    kid, key, other = bytes(range(16)), bytes(range(16, 32)), bytes(16)
    assert license_response([other, kid], kid, key) == {
        "keys": [{"kty": "oct", "k": b64url(key), "kid": b64url(kid)}],
        "type": "temporary",
    }
    assert license_response([other], kid, key) == {"keys": [], "type": "temporary"}


@pytest.fixture(scope="module")
def api():
    settings = ApiSettings(tokens=frozenset({TOKEN}), media_secret="media-secret", key_secret=KEY_SECRET)
    named, assets, store = keyed_services(settings)
    key = run(store.create("p1", "cenc", "out", FOLDER))
    run(store.create("p2", "cenc", "out", "shows/ep2/p2"))
    run(store.create("a1", "aes-128", "out", "shows/ep3/a1"))
    record = run(store.record("p1"))
    assert record is not None and record.kid is not None
    with serving(settings, named) as app, TestClient(app, base_url="http://mpr.local") as client:
        yield client, assets, key, bytes.fromhex(record.kid)


def test_the_licence_answers_a_valid_token_of_its_package_only(api):
    client, assets, key, kid = api
    good = assets.keys.tokens.token("p1", int(time.time()) + 60)
    r = client.post(f"{license_uri('p1')}?token={good}", content=_request(kid))
    assert r.status_code == 200, r.text
    assert r.json() == {"keys": [{"kty": "oct", "k": b64url(key), "kid": b64url(kid)}], "type": "temporary"}
    assert r.headers["cache-control"] == "private, no-store"
    # another KID (another package's, or made up) gets no key
    assert client.post(f"{license_uri('p1')}?token={good}", content=_request(bytes(16))).json()["keys"] == []
    missing = client.post(license_uri("p1"), content=_request(kid))
    assert missing.status_code == 401 and "playback token" in missing.json()["detail"]
    other = client.post(f"{license_uri('p2')}?token={good}", content=_request(kid))
    assert other.status_code == 403 and "does not grant" in other.json()["detail"]
    old = assets.keys.tokens.token("p1", int(time.time()) - 1)
    assert client.post(f"{license_uri('p1')}?token={old}", content=_request(kid)).status_code == 403
    bad = client.post(f"{license_uri('p1')}?token={good}", content=b"kids please")
    assert bad.status_code == 400 and "JSON" in bad.json()["detail"]
    # a bearer token is no playback token; an AES-128 package has no licence
    assert (
        client.post(
            license_uri("p1"), content=_request(kid), headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 401
    )
    aes = assets.keys.tokens.token("a1", int(time.time()) + 60)
    assert client.post(f"{license_uri('a1')}?token={aes}", content=_request(kid)).status_code == 404


bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(st.sampled_from(["kids", "type", "x"]), inner, max_size=3)
        ),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda kids, kind: json.dumps({"kids": kids, "type": kind}).encode(),
        st.lists(st.text(alphabet="AaZz09-_+/=", min_size=20, max_size=26), max_size=20),
        st.sampled_from(["temporary", "persistent-license", "", 3]),
    ),
)
tokens = st.one_of(st.none(), st.text(max_size=60), st.text(alphabet="0123456789.abcdefAB-_", max_size=40))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    token=tokens,
    valid=st.booleans(),
    package=st.sampled_from(["p1", "p2", "nobody", "%C3%A9", "a" * 300]),
)
def test_any_body_and_token_is_a_4xx_with_a_message_never_a_500(api, body, token, valid, package):
    client, assets, _, kid = api
    if valid:
        token = assets.keys.tokens.token("p1", int(time.time()) + 60)
    params = {} if token is None else {"token": token}
    r = client.post(f"/media/licenses/{package}", content=body, params=params)
    assert r.status_code < 500, (body, token, package, r.status_code, r.text[:200])
    if r.status_code == 200:  # only p1's own token, and a well-formed request
        assert valid and package == "p1"
        assert all(k["kid"] == b64url(kid) for k in r.json()["keys"])
    else:
        assert r.status_code in (400, 401, 403, 404) and r.json()["detail"]


MPD_LINE = f"      <dashif:Laurl>{license_uri('p1')}</dashif:Laurl>"
MASTER_LINE = f'#EXT-X-SESSION-DATA:DATA-ID="{LICENSE_DATA_ID}",VALUE="{license_uri("p1")}"'


def test_licence_urls_get_a_token_in_the_packages_own_folder_only(api):
    _, assets, _, _ = api
    keys = assets.keys
    token = keys.tokens.token("p1", 2_000_000_000)
    url = f"http://mpr.local{license_uri('p1')}?token={token}"
    for line, name, want in (
        (MPD_LINE, "manifest.mpd", f"      <dashif:Laurl>{url}</dashif:Laurl>"),
        (MASTER_LINE, "master.m3u8", f'#EXT-X-SESSION-DATA:DATA-ID="{LICENSE_DATA_ID}",VALUE="{url}"'),
    ):
        text = f"a\n{line}\nb"
        assert (
            run(keys.with_license_tokens(text, "out", f"{FOLDER}/{name}", 2_000_000_000, "http://mpr.local"))
            == f"a\n{want}\nb"
        )
        for bucket, key_name in (("out", f"shows/ep2/p2/{name}"), ("other", f"{FOLDER}/{name}")):
            assert run(keys.with_license_tokens(text, bucket, key_name, 2_000_000_000, "")) == text


def test_the_console_player_reads_the_licence_where_the_master_names_it():
    import mpr_api.console

    player = Path(mpr_api.console.__file__).parent / "static" / "js" / "player.js"
    assert f'const LICENSE_DATA_ID = "{LICENSE_DATA_ID}";' in player.read_text()
