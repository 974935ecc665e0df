"""Encrypted packages end to end on the test stack: an ``"encryption": "aes-128"`` package of an 8 s
320x180 source, its picture chunked (two chunks: each encrypts its own segments, the chord keys the
stitched playlist) and its sound whole (its own playlist keyed as uploaded).

- a segment in S3 is not fMP4 (no box header) and, behind its clear init segment, does not decode; the
  same bytes decrypted with the key the API serves (IV: the segment's number) decode;
- the key URI of a playlist served under the package's signed link carries a playback token that gets
  the 16-byte key; without the token the key route answers 401, with another package's 403;
- FFmpeg decodes the whole package through the API's signed master (keys fetched over HTTP);
- no DASH manifest; the KV bucket holds the key wrapped only; no message of the jobs stream carries it;
- only the transcoders write the keys' bucket, only they and the API read it."""

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
from mpr_transcoder.kinds.rendition.encryption import decrypt_segment, segment_number
from tests.media import make_video
from tests.system.conftest import wait_job
from tests.system.content_key_checks import stored_key_and_job_messages

pytestmark = pytest.mark.system

SECONDS = 8
FPS = 25
BOXES = {b"styp", b"moof", b"sidx", b"ftyp", b"moov", b"mdat", b"free", b"emsg", b"prft"}


@pytest.fixture(scope="module")
def source(s3, tmp_path_factory) -> str:
    path = make_video(
        tmp_path_factory.mktemp("crypt") / "film.mp4", seconds=SECONDS, size="320x180", rate=FPS
    )
    key = f"crypt-{uuid.uuid4().hex[:6]}/film.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    return key


@pytest.fixture(scope="module")
def package(api, source, stack) -> dict:
    before = asyncio.run(_jobs_stream_last_seq(stack))
    r = api.post(
        "/api/jobs",
        json={"kind": "package", "source_key": source, "encryption": "aes-128", "chunk_seconds": 4},
    )
    assert r.status_code == 202, r.text
    out = wait_job(api, r.json()["job"]["id"], timeout=240)
    assert out["job"]["status"] == "completed", out["job"]
    return {**out, "seq_before": before}


def _frames(path_or_url: str, *extra: str) -> int:
    """Video frames FFmpeg decodes (0 when it cannot)."""
    run = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            *extra,
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            path_or_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    value = run.stdout.strip().splitlines()[0] if run.stdout.strip() else ""
    return int(value) if run.returncode == 0 and value.isdigit() else 0


def _key_of_playlist(text: str) -> tuple[str, list[str]]:
    """The key URI of a served media playlist (one for every segment) and its segment URIs."""
    uris = re.findall(r'#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)",IV=0x[0-9a-f]{32}', text)
    segments = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert uris and len(uris) == len(segments) and len(set(uris)) == 1, text
    return uris[0], segments


def test_an_encrypted_segment_decodes_only_with_the_key_the_signed_link_gets(api, s3, package, tmp_path):
    job = package["job"]
    pid = job["id"]
    keys = job["output_keys"]
    assert not any(k.endswith("manifest.mpd") for k in keys)  # DASH has no AES-128 scheme
    folder = keys[0].rsplit("/", 1)[0]
    segments = sorted(k for k in keys if k.endswith(".m4s") and "/360p_" in k)
    assert len(segments) == 2  # the two chunks' segments, numbered in the title
    init = tmp_path / "init.mp4"
    s3.download_file("mpr-media-out", f"{folder}/360p_init.mp4", str(init))
    assert init.read_bytes()[4:8] == b"ftyp"  # the init segment is clear

    # the key, through the package's signed master and the 360p playlist it names
    master_url = package["output_url"]
    with httpx.Client(timeout=30, follow_redirects=False) as player:  # no bearer token: a player
        master = player.get(master_url)
        assert master.status_code == 200 and "360p.m3u8" in master.text
        media = player.get(master_url.rsplit("/", 1)[0] + "/360p.m3u8")
        assert media.status_code == 200
        key_url, listed = _key_of_playlist(media.text)
        assert f"/media/keys/{pid}?token=" in key_url
        key = player.get(key_url)
        assert key.status_code == 200 and len(key.content) == 16
        # without the token, or for another package, no key
        bare = player.get(key_url.split("?", 1)[0])
        assert bare.status_code == 401 and bare.json()["detail"]
        token = key_url.split("token=", 1)[1]
        other = player.get(key_url.split("/media/keys/")[0] + f"/media/keys/{pid}x?token={token}")
        assert other.status_code == 403
        # the audio rendition (not chunked: keyed as it was uploaded) names the same key
        audio = player.get(master_url.rsplit("/", 1)[0] + "/audio.m3u8")
        assert _key_of_playlist(audio.text)[0].split("?")[0] == key_url.split("?")[0]
    assert len(listed) == 2

    for seg_key in segments:
        sealed = tmp_path / "sealed.m4s"
        s3.download_file("mpr-media-out", seg_key, str(sealed))
        data = sealed.read_bytes()
        assert data[4:8] not in BOXES, seg_key
        as_stored = tmp_path / "as-stored.mp4"
        as_stored.write_bytes(init.read_bytes() + data)
        assert _frames(str(as_stored)) == 0, f"{seg_key} decodes without its key"
        number = segment_number(seg_key.rsplit("/", 1)[1])
        assert number is not None
        opened = tmp_path / "opened.mp4"
        opened.write_bytes(init.read_bytes() + decrypt_segment(data, key.content, number))
        assert _frames(str(opened)) > 0, f"{seg_key} does not decode with its key"


def test_ffmpeg_plays_the_whole_package_through_the_signed_master(package):
    frames = _frames(package["output_url"])
    assert abs(frames - SECONDS * FPS) <= 2, frames


def test_the_key_is_wrapped_at_rest_and_on_no_message_of_the_jobs_stream(api, stack, package):
    pid = package["job"]["id"]
    master_url = package["output_url"]
    media = httpx.get(master_url.rsplit("/", 1)[0] + "/360p.m3u8", timeout=30)
    key = httpx.get(_key_of_playlist(media.text)[0], timeout=30).content
    forms = [
        key,
        key.hex().encode(),
        key.hex().upper().encode(),
        base64.b64encode(key).rstrip(b"="),
        base64.urlsafe_b64encode(key).rstrip(b"="),
    ]

    stored, bodies = stored_key_and_job_messages(stack, pid, package["seq_before"])
    assert pid.encode() in stored and b"wrapped:v1:" in stored
    assert not any(f in stored for f in forms)
    mentioning = [b for b in bodies if pid.encode() in b]
    assert mentioning, "the package's messages are in the jobs stream"
    assert not any(f in b for b in bodies for f in forms)


async def _jobs_stream_last_seq(stack) -> int:
    nc = await nats.connect(stack.nats.url, inbox_prefix=inbox_prefix("setup"))
    try:
        return (await nc.jetstream().stream_info(s.JOBS_STREAM)).state.last_seq
    finally:
        await nc.close()


def test_only_the_transcoders_write_the_keys_and_only_they_and_the_api_read_them(stack, package):
    pid = package["job"]["id"]

    async def refused(identity: str, write: bool) -> list[str]:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            stack.nats.url_as(identity),
            error_cb=on_error,
            max_reconnect_attempts=0,
            inbox_prefix=inbox_prefix(identity),
        )
        try:
            js = nc.jetstream(timeout=1.0)
            if write:
                kv = await js.key_value(s.CONTENT_KEYS_KV)  # it may read …
                assert (await kv.get(pid)).value
                with pytest.raises(Exception):  # noqa: B017 - … not write: never acknowledged
                    await kv.put(pid, b"forged")
            else:
                with pytest.raises(Exception):  # noqa: B017 - not even bind to the bucket
                    await js.key_value(s.CONTENT_KEYS_KV)
            await nc.flush()
            await asyncio.sleep(0.05)
        finally:
            await nc.close()
        return errors

    for identity in ("catalog", "scanner", "publisher", "minio"):
        errors = asyncio.run(refused(identity, write=False))
        assert any("permissions violation" in e.lower() for e in errors), (identity, errors)
    errors = asyncio.run(refused("api", write=True))
    assert any("permissions violation" in e.lower() for e in errors), errors


def test_cenc_of_an_av1_ladder_is_refused(api, source):
    r = api.post(
        "/api/jobs",
        json={"kind": "package", "source_key": source, "encryption": "cenc", "preset": "abr-av1"},
    )
    assert r.status_code == 400 and "not available" in r.text
