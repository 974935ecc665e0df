"""Playlists served under a signed folder link name their segments as presigned S3 URLs: a player (or
FFmpeg) makes one hop per segment instead of a request to the API and a 307 to S3 each, and FFmpeg no
longer warns "Cannot reuse HTTP connection for different host". What is rewritten, what is left alone
(keys, variant playlists, absolute URIs, anything outside the playlist's folder), and that a rewritten
URL lives as long as the link and reads the segment."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpr_api.assets.media_links import presign_seconds, rewrite_playlist, segment_key
from mpr_common import storage
from tests.system.test_media_links import (  # noqa: F401 (fixtures)
    BASE,
    FOLDER,
    SEGMENT,
    api,
    make_client,
    s3_settings,
    signed_path,
    stored,
)

pytestmark = pytest.mark.system

CMAF = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    '#EXT-X-MAP:URI="720p_init.mp4"\n'
    '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key",KEYFORMAT="x"\n'
    "#EXTINF:2.0,\n720p_00000.m4s\n#EXTINF:2.0,\n720p_00001.m4s\r\n"
    "#EXTINF:2.0,\n../other/x.m4s\n#EXTINF:2.0,\nhttps://cdn.example/a.m4s\n"
    "#EXTINF:2.0,\nsub/part%201.m4s\n#EXT-X-ENDLIST\n"
)


def fake_presign(key: str) -> str:
    return f"https://s3.example/{key}?sig"


def test_segments_and_the_init_segment_become_presigned_urls():
    out = rewrite_playlist(CMAF, "movie/job1/720p.m3u8", fake_presign)
    lines = out.split("\n")
    assert '#EXT-X-MAP:URI="https://s3.example/movie/job1/720p_init.mp4?sig"' in lines
    assert "https://s3.example/movie/job1/720p_00000.m4s?sig" in lines
    assert "https://s3.example/movie/job1/720p_00001.m4s?sig\r" in lines  # line endings kept
    assert "https://s3.example/movie/job1/sub/part 1.m4s?sig" in lines  # percent-decoded to the key
    # left as written: the key (served only to a playback token), a sibling folder, an absolute URI
    assert '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key",KEYFORMAT="x"' in lines
    assert "../other/x.m4s" in lines and "https://cdn.example/a.m4s" in lines
    assert len(lines) == len(CMAF.split("\n"))


def test_a_master_playlist_keeps_its_variants_under_the_link():
    master = (
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",URI="audio.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="a"\n720p.m3u8\n'
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="720p_iframes.m3u8"\n'
    )
    assert rewrite_playlist(master, "movie/job1/master.m3u8", fake_presign) == master


def test_segment_keys_stay_in_the_playlists_folder():
    assert segment_key("a/b/x.m3u8", "s.m4s") == "a/b/s.m4s"
    assert segment_key("a/b/x.m3u8", "c/./s.m4s") == "a/b/c/s.m4s"
    assert segment_key("top.m3u8", "s.ts") == "s.ts"
    for uri in ("../s.m4s", "c/../../s.m4s", "/a/b/s.m4s", "//h/s.m4s", "http://h/s.ts", "s.ts?x=1", ""):
        assert segment_key("a/b/x.m3u8", uri) is None, uri
    assert segment_key("top.m3u8", "../s.ts") is None and segment_key("top.m3u8", "..") is None
    assert segment_key("a/b/x.m3u8", "v.m3u8") is None  # a playlist is served by the API


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40), max_size=20))
def test_any_playlist_text_only_ever_presigns_keys_under_its_folder(lines):
    asked: list[str] = []

    def presign(key: str) -> str | None:
        asked.append(key)
        return None  # refused: the line must come back as written

    text = "\n".join(lines)
    out = rewrite_playlist(text, "a/b/x.m3u8", presign)
    # nothing presigned: every line as written, except that a URI line loses surrounding blanks
    assert [o.strip() for o in out.split("\n")] == [t.strip() for t in text.split("\n")]
    for key in asked:
        assert key.startswith("a/b/") and ".." not in key.split("/"), key


@given(st.integers(min_value=-(10**6), max_value=10**9))
def test_presigned_urls_live_as_long_as_the_link_within_s3s_limit(left):
    seconds = presign_seconds(1_000_000 + left, now=1_000_000)
    assert 1 <= seconds <= 7 * 24 * 3600
    if 1 <= left <= 7 * 24 * 3600:
        assert seconds == left


def test_a_playlist_under_a_signed_link_names_presigned_segments_that_play(api):  # noqa: F811
    path = signed_path(api, f"{FOLDER}index.m3u8")
    r = api.get(path)
    assert r.status_code == 200, r.text
    [uri] = [line for line in r.text.splitlines() if line and not line.startswith("#")]
    assert "X-Amz-Signature" in uri and f"/t-out/{FOLDER}job1_00000.ts" in uri
    expires = int(parse_qs(urlsplit(uri).query)["X-Amz-Expires"][0])
    link_expires = int(path.removeprefix("/media/s/").split(".", 1)[0])
    assert abs(expires - (link_expires - time.time())) < 60  # as long as the link, not an hour
    assert httpx.get(uri).content == SEGMENT  # one hop, straight from S3
    assert int(r.headers["content-length"]) == len(r.content)


def test_with_api_media_proxy_segments_stay_relative_through_the_api(stored):  # noqa: F811
    client, _ = make_client(stored, media_proxy=True)
    with client:
        r = client.get(signed_path(client, f"{FOLDER}index.m3u8"))
        assert r.status_code == 200 and "job1_00000.ts" in r.text.splitlines()
        assert BASE not in r.text and "X-Amz" not in r.text


def test_only_outputs_mpr_serves_are_presigned(api, stored):  # noqa: F811
    """A playlist naming a file of a kind MPR does not serve (or a key it refuses) leaves it relative:
    the API then refuses it as before, and no presigned URL for it is ever handed out."""
    s3 = storage.get_s3_client(stored)
    body = b"#EXTM3U\n#EXTINF:4.0,\nnotes.txt\n#EXTINF:4.0,\n-x.ts\n#EXTINF:4.0,\njob1_00000.ts\n"
    s3.put_object(Bucket="t-out", Key=f"{FOLDER}odd.m3u8", Body=body)
    r = api.get(signed_path(api, f"{FOLDER}odd.m3u8"))
    lines = r.text.splitlines()
    assert "notes.txt" in lines and "-x.ts" in lines, lines
    assert lines[-1].startswith("http") and "X-Amz-Signature" in lines[-1]
