"""Signed folder links: a playlist, DASH manifest or WebVTT track the API hands out is readable with
every file it names relatively, without a bearer token, and nothing else is (the API in process over
moto's S3 server and a fake NATS)."""

from __future__ import annotations

import time
from urllib.parse import urljoin

import httpx
import pytest
from litestar.testing import TestClient

from mpr_api.app import create_app, services
from mpr_api.assets.media_links import LinkRefused, MediaLinks, folder_of
from mpr_api.settings import ApiSettings
from mpr_common import storage
from mpr_common.events import JobView
from tests import moto_s3
from tests.fakes import FakeKV, FakeNats

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)

TOKEN = "t0ken"
SECRET = "media-secret"
BASE = "http://mpr.local"
FOLDER = "movie/job1/"
PLAYLIST = (
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    b"#EXTINF:4.0,\njob1_00000.ts\n#EXT-X-ENDLIST\n"
)
SEGMENT = bytes(range(256)) * 8
VTT = b"WEBVTT\n\n00:00:00.000 --> 00:00:10.000\nstoryboard_000.jpg#xywh=0,0,160,90\n"
OBJECTS = {
    f"{FOLDER}index.m3u8": PLAYLIST,
    f"{FOLDER}job1_00000.ts": SEGMENT,
    f"{FOLDER}manifest.mpd": b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"/>',
    f"{FOLDER}storyboard.vtt": VTT,
    f"{FOLDER}storyboard_000.jpg": b"\xff\xd8jpeg",
    f"{FOLDER}notes.txt": b"not media",
    "movie/job1b/secret.ts": b"a sibling folder's segment",
    "movie/other.ts": b"the parent folder's segment",
    "top.m3u8": b"#EXTM3U\n",
    "my vidéo+1/job2/index.m3u8": PLAYLIST,
    "my vidéo+1/job2/job1_00000.ts": SEGMENT,
}


# --- the token ---------------------------------------------------------------------------------
def test_a_token_grants_its_folder_and_what_is_below_until_it_expires():
    links = MediaLinks(b"k", ttl=60)
    token = links.token("out", "a/b/", now=1000)
    for key in ("a/b/index.m3u8", "a/b/720p_00000.m4s", "a/b/sub/x.ts"):
        links.check(token, "out", key, now=1059)
    with pytest.raises(LinkRefused, match="expired"):
        links.check(token, "out", "a/b/index.m3u8", now=1061)


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("out", "a/bc/x.ts"),  # a folder whose name begins with the granted one's
        ("out", "a/x.ts"),  # the parent
        ("out", "a/c/x.ts"),  # a sibling
        ("out2", "a/b/x.ts"),  # the same folder in another bucket
        ("ou", "t/a/b/x.ts"),  # the same characters cut elsewhere
        ("out", "x.ts"),
    ],
)
def test_a_token_grants_nothing_outside_its_folder(bucket, key):
    links = MediaLinks(b"k", ttl=60)
    token = links.token("out", "a/b/", now=1000)
    with pytest.raises(LinkRefused, match="does not grant"):
        links.check(token, bucket, key, now=1001)


def test_forged_and_tampered_tokens_are_refused():
    links = MediaLinks(b"k", ttl=60)
    token = links.token("out", "a/b/", now=1000)
    expires, length, mac = token.split(".")
    forged = MediaLinks(b"another secret", ttl=60).token("out", "a/b/", now=1000)
    longer = f"{int(expires) + 3600}.{length}.{mac}"
    shorter = f"{expires}.{len('out/')}.{mac}"  # the whole bucket with the folder's MAC
    flipped = f"{expires}.{length}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
    for bad in (forged, longer, shorter, flipped):
        with pytest.raises(LinkRefused, match="does not grant"):
            links.check(bad, "out", "a/b/x.ts", now=1001)
    for garbage in ("", "x", "1.2", "a.b.c", "1.2.3.4", "1.999.x", "1.4.é"):
        with pytest.raises(LinkRefused):
            links.check(garbage, "out", "a/b/x.ts", now=1001)


def test_a_link_grants_the_folder_of_its_key():
    assert folder_of("a/b/index.m3u8") == "a/b/" and folder_of("top.m3u8") == ""
    links = MediaLinks(b"k", ttl=60, public_url="https://media.example/")
    url = links.url("out", "a b/index.m3u8", now=1000)
    assert url.startswith("https://media.example/media/s/") and url.endswith("/out/a%20b/index.m3u8")
    with pytest.raises(ValueError):
        links.token("out", "a/b")


# --- the API in process ------------------------------------------------------------------------
def make_client(s3_settings, **settings_kw) -> tuple[TestClient, FakeNats]:
    settings = ApiSettings(
        tokens=frozenset({TOKEN}), public_media=False, media_secret=SECRET, s3=s3_settings, **settings_kw
    )
    nc = FakeNats()
    s3 = storage.get_s3_client(s3_settings)
    state = services(settings, nc, FakeKV(), storage.make_public_client(s3_settings), FakeKV(), s3)
    return TestClient(create_app(settings, state=state), base_url=BASE), nc


def completed(job_id: str, output_key: str) -> JobView:
    now = time.time()
    return JobView(
        id=job_id,
        kind="hls",
        status="completed",
        source_key="movie.mp4",
        output_key=output_key,
        created_at=now,
        updated_at=now,
    )


@pytest.fixture(scope="module")
def stored(s3_settings):
    s3 = storage.get_s3_client(s3_settings)
    for key, body in OBJECTS.items():
        s3.put_object(Bucket="t-out", Key=key, Body=body, ContentType=storage.guess_content_type(key))
    return s3_settings


@pytest.fixture(scope="module")
def api(stored):
    """One app for the module's tests (making one costs about 0.4 s of CPU): they only read, and none
    sends a wrong token or a session cookie, so none spends the auth throttle the others share."""
    client, nc = make_client(stored)
    nc.jobs["job1"] = completed("job1", f"{FOLDER}index.m3u8")
    nc.jobs["thumb"] = completed("thumb", f"{FOLDER}storyboard_000.jpg")
    with client:
        yield client


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def signed_path(client: TestClient, key: str) -> str:
    """The signed link /media/out/ redirects to for a manifest."""
    r = client.get(f"/media/out/{key}", headers=bearer(), follow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["location"].startswith(f"{BASE}/media/s/")
    return r.headers["location"].removeprefix(BASE)


def test_a_playlists_output_url_plays_with_its_segments_without_a_bearer_token(api):
    job = api.get("/api/jobs/job1", headers=bearer()).json()
    url = job["output_url"]
    assert url.startswith(f"{BASE}/media/s/") and url.endswith(f"/t-out/{FOLDER}index.m3u8")
    playlist = api.get(url.removeprefix(BASE))  # no Authorization, as a player or ffprobe
    assert playlist.status_code == 200 and playlist.text.startswith(PLAYLIST.decode().split("job1_")[0])
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert playlist.headers["access-control-allow-origin"] == "*"
    segment_url = urljoin(url, "job1_00000.ts")  # as a player resolves it
    r = api.get(segment_url.removeprefix(BASE), follow_redirects=False)
    assert r.status_code == 307 and "X-Amz-Signature" in r.headers["location"]
    assert r.headers["access-control-allow-origin"] == "*"
    # a web player on another origin follows the redirect: make dev's S3 (moto) answers CORS
    segment = httpx.get(r.headers["location"], headers={"Origin": "http://player.example"})
    assert segment.content == SEGMENT and segment.headers["access-control-allow-origin"]
    graphql = api.post("/graphql", json={"query": '{ job(id: "job1") { outputUrl } }'}, headers=bearer())
    assert graphql.json()["data"]["job"]["outputUrl"].startswith(f"{BASE}/media/s/")


def test_keys_with_spaces_and_other_characters_are_linked_encoded(api):
    path = signed_path(api, "my vidéo+1/job2/index.m3u8")
    assert path.endswith("/t-out/my%20vid%C3%A9o%2B1/job2/index.m3u8")
    assert "/my%20vid%C3%A9o%2B1/job2/job1_00000.ts?" in api.get(path).text  # its segment, presigned
    segment = api.get(urljoin(BASE + path, "job1_00000.ts").removeprefix(BASE), follow_redirects=False)
    assert httpx.get(segment.headers["location"]).content == SEGMENT


def test_other_outputs_keep_presigned_s3_urls(api, stored):
    url = api.get("/api/jobs/thumb", headers=bearer()).json()["output_url"]
    assert url.startswith(stored.endpoint_url) and "X-Amz-Signature" in url


def test_media_out_of_a_manifest_redirects_to_its_signed_folder_link(api):
    for name, media_type, relative, body in (
        ("manifest.mpd", "application/dash+xml", None, None),
        (
            "storyboard.vtt",
            "text/vtt",
            "storyboard_000.jpg#xywh=0,0,160,90",
            OBJECTS[f"{FOLDER}storyboard_000.jpg"],
        ),
    ):
        path = signed_path(api, FOLDER + name)
        r = api.get(path)
        assert r.status_code == 200 and r.content == OBJECTS[FOLDER + name]
        assert r.headers["content-type"].startswith(media_type)
        assert (
            r.headers["x-content-type-options"] == "nosniff"
            and "sandbox" in r.headers["content-security-policy"]
        )
        if relative:
            linked = api.get(urljoin(BASE + path, relative).removeprefix(BASE), follow_redirects=False)
            assert httpx.get(linked.headers["location"]).content == body
    head = api.head(signed_path(api, f"{FOLDER}index.m3u8"))
    assert (
        head.status_code == 200
        and head.content == b""
        # what a GET answers: the playlist with its segments presigned
        and head.headers["content-length"]
        == str(len(api.get(signed_path(api, f"{FOLDER}index.m3u8")).content))
    )
    # a segment through /media/out/ is presigned as before
    r = api.get(f"/media/out/{FOLDER}job1_00000.ts", headers=bearer(), follow_redirects=False)
    assert r.status_code == 307 and "X-Amz-Signature" in r.headers["location"]


def test_signed_links_need_no_bearer_token_but_media_out_does_when_media_is_private(api):
    assert api.get(f"/media/out/{FOLDER}index.m3u8", follow_redirects=False).status_code == 401
    assert api.get(signed_path(api, f"{FOLDER}index.m3u8")).status_code == 200
    assert api.get("/schema/openapi.json").status_code == 200  # the route documents itself


def test_a_link_reads_nothing_outside_its_folder(api):
    path = signed_path(api, f"{FOLDER}index.m3u8")
    token = path.split("/")[3]
    for key in ("movie/job1b/secret.ts", "movie/other.ts", "top.m3u8"):
        r = api.get(f"/media/s/{token}/t-out/{key}", follow_redirects=False)
        assert r.status_code == 403 and "does not grant" in r.json()["detail"], key
    # ".." resolved by the client lands in the parent folder; sent encoded, the key itself is refused
    r = api.get(f"/media/s/{token}/t-out/{FOLDER}../job1b/secret.ts", follow_redirects=False)
    assert r.status_code == 403
    r = api.get(f"/media/s/{token}/t-out/{FOLDER}%2E%2E/job1b/secret.ts", follow_redirects=False)
    assert r.status_code == 400 and "'..'" in r.json()["detail"]
    r = api.get(f"/media/s/{token}/t-in/{FOLDER}index.m3u8", follow_redirects=False)  # another bucket
    assert r.status_code == 403


def test_forged_expired_and_foreign_bucket_tokens_are_refused(api):
    links = MediaLinks(SECRET.encode(), ttl=3600)
    good = links.token("t-out", FOLDER)
    forged = MediaLinks(b"guessed", ttl=3600).token("t-out", FOLDER)
    expired = links.token("t-out", FOLDER, now=time.time() - 7200)
    for token, reason in ((forged, "does not grant"), (expired, "expired"), ("not-a-token", "malformed")):
        r = api.get(f"/media/s/{token}/t-out/{FOLDER}index.m3u8")
        assert r.status_code == 403 and reason in r.json()["detail"]
    assert api.get(f"/media/s/{good}/t-out/{FOLDER}index.m3u8").status_code == 200
    # a genuine token for a bucket that holds no outputs (the sources) reads nothing there
    r = api.get(f"/media/s/{links.token('t-in', '')}/t-in/a.mp4", follow_redirects=False)
    assert r.status_code == 404 and "no outputs" in r.json()["detail"]
    # nor files that are not media, nor a missing object
    r = api.get(f"/media/s/{good}/t-out/{FOLDER}notes.txt", follow_redirects=False)
    assert r.status_code == 404 and "not a media file" in r.json()["detail"]
    r = api.get(f"/media/s/{good}/t-out/{FOLDER}gone.m3u8")
    assert r.status_code == 404 and "no object" in r.json()["detail"]


def test_a_token_can_neither_list_nor_write(api, stored):
    path = signed_path(api, f"{FOLDER}index.m3u8")
    folder = path.rsplit("/", 1)[0] + "/"
    r = api.get(folder)  # the folder itself is no object it grants (Litestar drops the trailing "/")
    assert r.status_code == 403 and "ListBucketResult" not in r.text
    assert api.get(folder + "?list-type=2").status_code == 403
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        assert api.request(method, path, content=b"#EXTM3U\n").status_code == 405, method
    s3 = storage.get_s3_client(stored)
    assert s3.get_object(Bucket="t-out", Key=f"{FOLDER}index.m3u8")["Body"].read() == PLAYLIST


def test_api_public_url_names_the_links_behind_a_proxy(stored):
    client, nc = make_client(stored, public_url="https://media.example/mpr")
    nc.jobs["job1"] = completed("job1", f"{FOLDER}index.m3u8")
    with client:
        url = client.get("/api/jobs/job1", headers=bearer()).json()["output_url"]
    assert url.startswith("https://media.example/mpr/media/s/")


def test_with_api_media_proxy_the_media_stream_through_the_api_with_ranges(stored):
    client, _ = make_client(stored, media_proxy=True)
    with client:
        path = signed_path(client, f"{FOLDER}index.m3u8")
        segment = path.rsplit("/", 1)[0] + "/job1_00000.ts"
        whole = client.get(segment)
        assert whole.status_code == 200 and whole.content == SEGMENT
        assert whole.headers["content-type"] == "video/mp2t" and whole.headers["accept-ranges"] == "bytes"
        part = client.get(segment, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == SEGMENT[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(SEGMENT)}"
        head = client.head(segment)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(SEGMENT))
        assert client.get(segment, headers={"Range": f"bytes={len(SEGMENT) + 10}-"}).status_code == 416
        assert client.get(path.rsplit("/", 1)[0] + "/gone.ts").status_code == 404
