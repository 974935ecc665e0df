"""Content keys: wrapped at rest and bound to their package, made once; served by the API only to a
playback token bound to that package and not expired (any other string: 401 or 403 with a message, never
a 500); written into an encrypted package's playlists only in that package's own folder."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.assets.playback_tokens import KeyRefused, PlaybackTokens
from mpr_api.automation.templates import Template, TemplateError, check_template
from mpr_api.settings import ApiSettings
from mpr_common.content_keys import ContentKeys, KeyUnreadable, KeyWrap, key_uri
from mpr_common.errors import Unauthorized
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import keyed_services, serving

TOKEN = "t0ken"
MEDIA_SECRET = "media-secret"
KEY_SECRET = "key-secret"
FOLDER = "shows/ep1/p1"


def run(coro):
    return asyncio.run(coro)


# --- at rest ---------------------------------------------------------------------------------------
def test_a_wrapped_key_opens_only_for_its_package_and_under_its_secret():
    wrap = KeyWrap(KEY_SECRET)
    key = bytes(range(16))
    wrapped = wrap.wrap(key, "p1")
    assert wrap.unwrap(wrapped, "p1") == key
    assert key.hex() not in wrapped and key not in wrapped.encode()
    for secret, package in ((KEY_SECRET, "p2"), ("another", "p1")):
        with pytest.raises(KeyUnreadable):
            KeyWrap(secret).unwrap(wrapped, package)
    with pytest.raises(KeyUnreadable):
        wrap.unwrap(wrapped[:-4] + "AAAA", "p1")


def test_a_package_gets_one_key_however_often_it_is_planned_and_the_bucket_holds_none_in_clear():
    kv = FakeKV()
    keys = ContentKeys(kv, KeyWrap(KEY_SECRET))
    first = run(keys.create("p1", "aes-128", "out", FOLDER))
    again = run(ContentKeys(kv, KeyWrap(KEY_SECRET)).create("p1", "aes-128", "out", FOLDER))
    assert first == again and len(first) == 16
    assert run(keys.key("p1")) == first and run(keys.key("p2")) is None
    stored = kv.values["p1"]
    assert first not in stored and first.hex().encode() not in stored
    # an entry copied under another package's id does not open there
    kv.values["p2"] = stored
    with pytest.raises(KeyUnreadable):
        run(keys.key("p2"))


# --- playback tokens -------------------------------------------------------------------------------
def test_a_playback_token_is_bound_to_its_package_and_expires():
    tokens = PlaybackTokens(b"s")
    token = tokens.token("p1", expires=2000)
    tokens.check(token, "p1", now=1999)
    with pytest.raises(KeyRefused, match="expired"):
        tokens.check(token, "p1", now=2001)
    with pytest.raises(KeyRefused, match="does not grant"):
        tokens.check(token, "p2", now=1999)
    with pytest.raises(KeyRefused, match="does not grant"):
        PlaybackTokens(b"other").check(token, "p1", now=1999)
    with pytest.raises(Unauthorized):
        tokens.check(None, "p1")


@pytest.fixture(scope="module")
def api():
    settings = ApiSettings(tokens=frozenset({TOKEN}), media_secret=MEDIA_SECRET, key_secret=KEY_SECRET)
    named, assets, store = keyed_services(settings)
    key = run(store.create("p1", "aes-128", "out", FOLDER))
    run(store.create("p2", "aes-128", "out", "shows/ep2/p2"))
    with serving(settings, named) as app, TestClient(app, base_url="http://mpr.local") as client:
        yield client, assets, key


def test_the_key_is_served_to_a_valid_token_only(api):
    client, assets, key = api
    good = assets.keys.tokens.token("p1", int(time.time()) + 60)
    r = client.get(f"/media/keys/p1?token={good}")
    assert r.status_code == 200 and r.content == key
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["cache-control"] == "private, no-store"
    missing = client.get("/media/keys/p1")
    assert missing.status_code == 401 and "playback token" in missing.json()["detail"]
    other = client.get(f"/media/keys/p2?token={good}")  # the token of another package
    assert other.status_code == 403 and "does not grant" in other.json()["detail"]
    old = assets.keys.tokens.token("p1", int(time.time()) - 1)
    expired = client.get(f"/media/keys/p1?token={old}")
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert client.get(f"/media/keys/p1?token={tampered}").status_code == 403
    # a bearer token is no playback token
    r = client.get("/media/keys/p1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 401
    assert (
        client.get(f"/media/keys/nobody?token={assets.keys.tokens.token('nobody', 2**33)}").status_code == 404
    )


token_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="0123456789.abcdefABCDEF-_xyz²١٣", max_size=80),
    st.builds(
        lambda a, b: f"{a}.{b}",
        st.text(alphabet="0123456789²١", max_size=30),
        st.text(alphabet="abcdefABCDEF0123456789-_é", max_size=40),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    token=token_text, package=st.sampled_from(["p1", "p2", "nobody", "a" * 300, "..", "p1%2F..", "%C3%A9"])
)
def test_any_token_string_is_refused_cleanly_never_a_500(api, token, package):
    """No string but an issued token (a 128-bit MAC nobody guesses) opens a key: the others are a 401,
    403 or 404 with a message."""
    client, _, _ = api
    r = client.get(f"/media/keys/{package}", params={"token": token})
    assert r.status_code in (401, 403, 404), (token, package, r.status_code, r.text[:200])
    assert r.json()["detail"]


# --- playlists -------------------------------------------------------------------------------------
PLAYLIST = f"""#EXTM3U
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI="720p_init.mp4"
#EXT-X-KEY:METHOD=AES-128,URI="{key_uri("p1")}",IV=0x00000000000000000000000000000000
#EXTINF:4.000000,
720p_00000.m4s
#EXT-X-ENDLIST
"""


def test_a_playlist_in_the_packages_folder_gets_a_token_in_its_key_uri(api):
    client, assets, key = api
    keys = assets.keys
    text = run(
        keys.with_key_tokens(PLAYLIST, "out", f"{FOLDER}/720p.m3u8", 2_000_000_000, "http://mpr.local")
    )
    token = keys.tokens.token("p1", 2_000_000_000)
    assert f'URI="http://mpr.local/media/keys/p1?token={token}",IV=0x' in text
    assert [x for x in text.splitlines() if "KEY" not in x] == [
        x for x in PLAYLIST.splitlines() if "KEY" not in x
    ]
    # elsewhere (another folder, another bucket), a playlist naming p1's key gets no token for it
    for bucket, key_name in (
        ("out", "shows/ep2/p2/720p.m3u8"),
        ("other", f"{FOLDER}/720p.m3u8"),
        ("out", f"{FOLDER}/x/720p.m3u8"),
    ):
        assert run(keys.with_key_tokens(PLAYLIST, bucket, key_name, 2_000_000_000, "")) == PLAYLIST
    # a clear playlist is left as it is
    clear = PLAYLIST.replace(PLAYLIST.splitlines()[3] + "\n", "")
    assert run(keys.with_key_tokens(clear, "out", f"{FOLDER}/720p.m3u8", 2_000_000_000, "")) == clear


def test_encryption_needs_the_key_secret_and_cenc_is_not_available_for_av1():
    for key_secret, body, message in (
        (None, {"encryption": "aes-128"}, "MPR_KEY_SECRET is unset"),
        (KEY_SECRET, {"encryption": "cenc", "preset": "abr-av1"}, "not available"),
    ):
        settings = ApiSettings(tokens=frozenset({TOKEN}), media_secret=MEDIA_SECRET, key_secret=key_secret)
        state = services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())
        with serving(settings, state) as app, TestClient(app) as client:
            r = client.post(
                "/api/jobs",
                json={"kind": "package", "source_key": "a.mp4", **body},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert r.status_code == 400 and message in r.text, r.text
            assert "encryption" in r.text


def test_templates_carry_encryption_under_the_same_rules():
    assert check_template(Template(kind="package", encryption="aes-128")).encryption == "aes-128"
    assert check_template(Template(kind="package", encryption="cenc")).encryption == "cenc"
    with pytest.raises(TemplateError, match="not available"):
        check_template(Template(kind="package", encryption="cenc", preset="abr-av1"))
    with pytest.raises(TemplateError, match="for package jobs"):
        check_template(Template(kind="transcode", encryption="aes-128"))
