"""A cenc package end to end on the test stack: a 6 s 320x180 package, its picture in two chunks (each
chunk encrypts its own segments after moving them on the title's timeline) and its sound whole.

- the MPD, master and media playlists served under the signed link name the KID and a licence URL
  with a playback token; the licence answers the key to that token only (401 without, 403 with another
  package's);
- the init segments announce cenc (encv/enca, pssh); the segments in S3 decode with the key from the
  licence (FFmpeg's ``-decryption_key``) into every frame, and without it into other pictures and sound;
- the KV bucket holds the key wrapped only, and no message of the jobs stream carries it."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import uuid

import httpx
import nats
import pytest

from mpr_common import subjects as s
from mpr_common.identities import inbox_prefix
from tests.media import make_video
from tests.system.conftest import wait_job
from tests.system.content_key_checks import stored_key_and_job_messages

pytestmark = pytest.mark.system

SECONDS = 6
FPS = 25


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def package(api, s3, stack, tmp_path_factory) -> dict:
    path = make_video(tmp_path_factory.mktemp("cenc") / "film.mp4", seconds=SECONDS, size="320x180", rate=FPS)
    source = f"cenc-{uuid.uuid4().hex[:6]}/film.mp4"
    s3.upload_file(str(path), "mpr-media-in", source)
    before = asyncio.run(_jobs_stream_last_seq(stack))
    r = api.post(
        "/api/jobs", json={"kind": "package", "source_key": source, "encryption": "cenc", "chunk_seconds": 4}
    )
    assert r.status_code == 202, r.text
    out = wait_job(api, r.json()["job"]["id"], timeout=240)
    assert out["job"]["status"] == "completed", out["job"]
    return {**out, "seq_before": before}


@pytest.fixture(scope="module")
def licence(package) -> dict:
    """What a player reads through the signed link: the KID and licence URL, and the key it gets."""
    master_url = package["output_url"]
    base = master_url.rsplit("/", 1)[0]
    with httpx.Client(timeout=30, follow_redirects=False) as player:  # no bearer token: a player
        master = player.get(master_url).text
        mpd = player.get(base + "/manifest.mpd").text
        media = player.get(base + "/360p.m3u8").text
        url = re.search(r'DATA-ID="com.mpr.clearkey-license",VALUE="([^"]+)"', master)[1]
        kid = uuid.UUID(re.search(r'cenc:default_KID="([0-9a-f-]{36})"', mpd)[1]).bytes
        answer = player.post(url, json={"kids": [_b64url(kid)], "type": "temporary"})
        assert answer.status_code == 200, answer.text
        (jwk,) = answer.json()["keys"]
    key = base64.urlsafe_b64decode(jwk["k"] + "==")
    return {"master": master, "mpd": mpd, "media": media, "url": url, "kid": kid, "key": key, "jwk": jwk}


def test_the_manifests_name_the_kid_and_a_licence_with_a_token(package, licence):
    pid = package["job"]["id"]
    keys = package["job"]["output_keys"]
    assert any(k.endswith("/manifest.mpd") for k in keys) and any(k.endswith("/master.m3u8") for k in keys)
    assert f"/media/licenses/{pid}?token=" in licence["url"]
    assert (
        licence["mpd"].count(f"<dashif:Laurl>{licence['url']}</dashif:Laurl>") == 4
    )  # 2 systems x (video, audio)
    assert licence["media"].count("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR") == 1
    assert _b64url(licence["kid"]) == licence["jwk"]["kid"] and len(licence["key"]) == 16


def test_the_licence_needs_the_packages_token(package, licence):
    body = {"kids": [_b64url(licence["kid"])], "type": "temporary"}
    bare = httpx.post(licence["url"].split("?", 1)[0], json=body, timeout=30)
    assert bare.status_code == 401 and bare.json()["detail"]
    pid = package["job"]["id"]
    other = httpx.post(
        licence["url"].replace(f"/licenses/{pid}?", f"/licenses/{pid}x?"), json=body, timeout=30
    )
    assert other.status_code == 403
    junk = httpx.post(licence["url"], content=b"{kids", timeout=30)
    assert junk.status_code == 400


def _decode(data: bytes, *args: str) -> list[str]:
    """FFmpeg's frame hashes of ``data`` streamed through a pipe (FFmpeg 5.1 decrypts a seekable file's
    fragments with the last fragment's IVs once it has read ahead; streamed, each with its own)."""
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "quiet", *args, "-i", "pipe:", "-f", "framemd5", "-"],
        input=data,
        capture_output=True,
        timeout=120,
    )
    return [
        line.rsplit(",", 1)[1].strip()
        for line in run.stdout.decode().splitlines()
        if not line.startswith("#")
    ]


@pytest.mark.parametrize("name", ["360p", "audio"])
def test_segments_decode_with_the_licence_key_only(s3, package, licence, name):
    keys = package["job"]["output_keys"]
    folder = keys[0].rsplit("/", 1)[0]
    segments = sorted(k for k in keys if k.endswith(".m4s") and f"/{name}_" in k)
    assert len(segments) == 2  # the picture's two chunks' segments, numbered in the title; the sound's
    init = s3.get_object(Bucket="mpr-media-out", Key=f"{folder}/{name}_init.mp4")["Body"].read()
    assert (b"encv" if name == "360p" else b"enca") in init and b"pssh" in init
    media = b"".join(s3.get_object(Bucket="mpr-media-out", Key=k)["Body"].read() for k in segments)
    opened = _decode(init + media, "-decryption_key", licence["key"].hex())
    if name == "360p":
        assert abs(len(opened) - SECONDS * FPS) <= 1, len(opened)
    else:
        assert len(opened) >= SECONDS * 46  # AAC frames of 1024 samples at 48 kHz
    # without the key (or with another) nothing decodes as it should
    for args in ((), ("-decryption_key", bytes(16).hex())):
        sealed = _decode(init + media, *args)
        assert len(set(sealed) & set(opened)) <= len(opened) // 10, (args, len(sealed))


def test_the_key_is_wrapped_at_rest_and_on_no_message_of_the_jobs_stream(stack, package, licence):
    pid = package["job"]["id"]
    key = licence["key"]
    forms = [key, key.hex().encode(), base64.b64encode(key).rstrip(b"="), _b64url(key).encode()]

    stored, bodies = stored_key_and_job_messages(stack, pid, package["seq_before"])
    assert b"wrapped:v1:" in stored and licence["kid"].hex().encode() in stored  # the KID is public
    assert not any(f in stored for f in forms)
    assert any(pid.encode() in b for b in bodies), "the package's messages are in the jobs stream"
    assert not any(f in b for b in bodies for f in forms)


async def _jobs_stream_last_seq(stack) -> int:
    nc = await nats.connect(stack.nats.url, inbox_prefix=inbox_prefix("setup"))
    try:
        return (await nc.jetstream().stream_info(s.JOBS_STREAM)).state.last_seq
    finally:
        await nc.close()
