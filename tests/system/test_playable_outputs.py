"""Outputs play where the API links them: ffprobe opens an HLS job's output_url and /media/out/ of its
playlist (segments named relatively, read through the signed folder link without a bearer token), and a
CMAF package's DASH manifest and HLS master playlist likewise (real servers: the embedded stack)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.media import probe
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system

SECONDS = 4


def codecs(info: dict) -> list[str]:
    return sorted(st["codec_name"] for st in info["streams"])


def test_an_hls_jobs_output_url_and_media_out_link_play_in_ffprobe(stack, api, s3, media_dir):
    source = f"playable-{uuid.uuid4().hex[:8]}/movie.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), stack.bucket_in, source)
    r = api.post("/api/jobs", json={"kind": "hls", "source_key": source, "preset": "hls-480p"})
    assert r.status_code == 202, r.text
    done = wait_job(api, r.json()["job"]["id"])
    assert done["job"]["status"] == "completed", done
    url = done["output_url"]
    assert url.startswith(f"{stack.api_url}/media/s/"), url
    source_duration = float(probe(str(media_dir / "sample.mp4"))["format"]["duration"])
    via_out = api.get(f"/media/out/{done['job']['output_key']}", follow_redirects=False)
    assert via_out.status_code == 307 and via_out.headers["location"].startswith(f"{stack.api_url}/media/s/")
    # ffprobe sends no bearer token: the link alone is the credential, for the playlist and each segment
    for link in (url, f"{stack.api_url}/media/out/{done['job']['output_key']}"):
        info = probe(link)
        assert info["format"]["format_name"] == "hls"
        assert codecs(info) == ["aac", "h264"]
        assert float(info["format"]["duration"]) == pytest.approx(source_duration, abs=0.5)


def make_cmaf_package(folder: Path) -> None:
    """What a package looks like: fMP4 init + segments named relatively by a DASH manifest and by an
    HLS master playlist over per-rendition playlists (FFmpeg's dash muxer writes both)."""
    folder.mkdir()
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k",
            "-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0",
            "-init_seg_name", "r$RepresentationID$_init.mp4",
            "-media_seg_name", "r$RepresentationID$_$Number%05d$.m4s",
            "-hls_playlist", "1", "-hls_master_name", "master.m3u8",
            str(folder / "manifest.mpd"),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip


def test_a_dash_manifest_and_hls_master_play_through_their_signed_folder_link(stack, api, s3, tmp_path):
    local = tmp_path / "package"
    make_cmaf_package(local)
    folder = f"playable-{uuid.uuid4().hex[:8]}/pkg/"
    for f in sorted(local.iterdir()):
        s3.upload_file(str(f), stack.bucket_out, folder + f.name)
    mpd = (local / "manifest.mpd").read_text()
    assert 'media="r$RepresentationID$_$Number%05d$.m4s"' in mpd  # relative links only
    for name, format_name in (("manifest.mpd", "dash"), ("master.m3u8", "hls")):
        r = api.get(f"/media/out/{folder}{name}", follow_redirects=False)
        assert r.status_code == 307, r.text
        link = r.headers["location"]
        assert link.startswith(f"{stack.api_url}/media/s/")
        with httpx.Client() as plain:  # no bearer token
            manifest = plain.get(link)
        assert manifest.status_code == 200 and manifest.text == (local / name).read_text()
        info = probe(link)
        assert info["format"]["format_name"] == format_name
        assert codecs(info) == ["aac", "h264"]
        assert float(info["format"]["duration"]) == pytest.approx(SECONDS, abs=0.3)


def test_ffmpeg_reads_a_signed_playlists_segments_straight_from_s3_in_one_hop(stack, api, s3, tmp_path):
    """Each segment of a media playlist served under a signed link is a presigned S3 URL: FFmpeg reads
    them without a redirect from the API (which made it warn "Cannot reuse HTTP connection for different
    host" on every segment)."""
    local = tmp_path / "package"
    make_cmaf_package(local)
    folder = f"playable-{uuid.uuid4().hex[:8]}/pkg/"
    for f in sorted(local.iterdir()):
        s3.upload_file(str(f), stack.bucket_out, folder + f.name)
    link = api.get(f"/media/out/{folder}master.m3u8", follow_redirects=False).headers["location"]
    variant = next(line for line in httpx.get(link).text.splitlines() if line.endswith(".m3u8"))
    playlist = httpx.get(link.rsplit("/", 1)[0] + "/" + variant).text
    uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert len(uris) >= SECONDS and all(u.startswith(stack.moto.url) and "X-Amz-Signature" in u for u in uris)
    assert f'URI="{stack.moto.url}' in playlist  # the init segment too
    r = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "warning", "-i", link, "-map", "0", "-c", "copy", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Cannot reuse HTTP connection" not in r.stderr, r.stderr
