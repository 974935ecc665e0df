"""Alternate audio end to end on the test stack: a source with an English and a French audio stream
becomes a package with two AAC renditions, listed in the HLS master (one audio group, LANGUAGE, one
DEFAULT) and the DASH MPD (an AdaptationSet with ``lang`` each), each carrying its own stream; a package
asking for a language the source lacks fails with the reason."""

from __future__ import annotations

import array
import itertools
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.media import ffmpeg
from tests.system.conftest import wait_for, wait_job

pytestmark = pytest.mark.system

SECONDS = 4  # one chunk: the package runs unchunked
TONES = {"en": 440, "fr": 1000}  # each stream's sine, Hz: what tells the tracks apart
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


@pytest.fixture(scope="module")
def source(s3, tmp_path_factory) -> str:
    path = (
        tmp_path_factory.mktemp("bilingual") / "talk.mkv"
    )  # Matroska keeps a stream's title tag (MP4 does not)
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency={TONES['en']}:sample_rate=48000:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency={TONES['fr']}:sample_rate=48000:duration={SECONDS}"),
        *("-map", "0:v", "-map", "1:a", "-map", "2:a"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "64k"),
        *("-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra"),
        *("-metadata:s:a:1", 'title=Version "française"'),
        str(path),
    )
    key = f"bilingual-{uuid.uuid4().hex[:6]}/talk.mkv"
    s3.upload_file(str(path), "mpr-media-in", key)
    return key


def submit(api, **body) -> dict:
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job"]


def tone(playlist: Path) -> float:
    """The dominant frequency of a rendition's sound (Hz), from its zero crossings: a sine of f Hz
    crosses zero 2f times a second. Decoded from its media playlist, so the rendition must decode."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(playlist), "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
        check=True,
        capture_output=True,
    )
    samples = array.array("h", out.stdout)
    assert len(samples) > 48000 * (SECONDS - 1), "the rendition holds the source's seconds"
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / 48000)


def test_each_audio_stream_is_a_track_of_its_own(api, s3, source, tmp_path):
    job = submit(api, kind="package", source_key=source, loudnorm=True)
    parent = wait_job(api, job["id"], timeout=180)["job"]
    assert parent["status"] == "completed", parent
    names = sorted(c.removeprefix(job["id"] + "-") for c in parent["children"])
    assert names == ["360p", "audio", "audio-fr"]  # the lowest rung at the source's own height
    for key in parent["output_keys"]:
        s3.download_file("mpr-media-out", key, str(tmp_path / key.rsplit("/", 1)[1]))

    master = (tmp_path / "master.m3u8").read_text()
    media = [line for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    attrs = [dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line)) for line in media]
    assert [(a["TYPE"], a["GROUP-ID"], a["LANGUAGE"], a["DEFAULT"], a["URI"]) for a in attrs] == [
        ("AUDIO", '"aud"', '"en"', "YES", '"audio.m3u8"'),
        ("AUDIO", '"aud"', '"fr"', "NO", '"audio-fr.m3u8"'),
    ]
    assert [a["NAME"] for a in attrs] == ['"en"', "\"Version 'française'\""]  # the title tag, made safe
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert variants and all('AUDIO="aud"' in v for v in variants)

    mpd = ET.parse(tmp_path / "manifest.mpd").getroot()
    sets = [s for s in mpd.findall("d:Period/d:AdaptationSet", NS) if s.get("contentType") == "audio"]
    assert [s.get("lang") for s in sets] == ["en", "fr"]
    assert [s.find("d:Role", NS).get("value") for s in sets] == ["main", "alternate"]

    # each rendition decodes and carries its own stream, normalised on its own
    assert tone(tmp_path / "audio.m3u8") == pytest.approx(TONES["en"], rel=0.02)
    assert tone(tmp_path / "audio-fr.m3u8") == pytest.approx(TONES["fr"], rel=0.02)
    loudness = [
        api.get(f"/api/jobs/{job['id']}-{n}").json()["job"]["loudness"] for n in ("audio", "audio-fr")
    ]
    assert all(m is not None and m["target_i"] == -23.0 for m in loudness)


def test_a_language_the_source_lacks_fails_the_package_with_the_reason(api, source):
    job = submit(api, kind="package", source_key=source, audio_languages=["fr", "de"])
    assert job["status"] == "queued"
    ended = wait_job(api, job["id"], timeout=120)["job"]
    assert (ended["status"], ended["failure_reason"]) == ("failed", "invalid"), ended
    assert "no audio stream in de" in ended["error"] and "en, fr" in ended["error"]
    assert ended["children"] == []
    bad = api.post(
        "/api/jobs", json={"kind": "package", "source_key": source, "audio_languages": ["klingon"]}
    )
    assert bad.status_code == 400 and "audio_languages" in bad.text


def test_the_assets_metadata_lists_its_audio_streams(api, source):
    scan = api.post("/api/assets/scan", json={"prefix": source.rsplit("/", 1)[0] + "/"})
    assert scan.status_code in (200, 202), scan.text

    def probed():
        items = api.get("/api/assets", params={"prefix": source}).json()["items"]
        return items[0] if items and items[0]["probe_status"] == "ok" else None

    asset = wait_for(probed, 60, what="the source's probe")
    assert asset["info"]["audio_streams"] == [
        {"index": 0, "codec": "aac", "channels": 1, "language": "en"},
        {"index": 1, "codec": "aac", "channels": 1, "language": "fr", "title": 'Version "française"'},
    ]
