"""Subtitles end to end on the test stack: an MKV with an SRT stream and a WebVTT sidecar beside it, and
an MP4 with a mov_text stream, become packages whose master playlist and MPD list every track with its
attributes, whose segmented cues keep the source's times (within one frame); a transcode burns a track
into the picture where and while its cues show; a language the source lacks fails with the reason; the
asset lists its subtitle streams."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mpr_transcoder import webvtt
from tests.media import ffmpeg
from tests.system.conftest import wait_for
from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system

SECONDS = 6  # one chunk: the package runs unchunked
FPS = 25
FRAME_MS = 1000 / FPS
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
SRT = "1\n00:00:00,500 --> 00:00:01,700\nHello world\n\n2\n00:00:02,300 --> 00:00:04,900\nAcross\na boundary\n\n"
EN_CUES = [(500, 1700), (2300, 4900)]  # the second spans the first segment boundary (4 s)
FR_VTT = "WEBVTT\n\n00:00:01.000 --> 00:00:03.250\nBonjour\n\n00:00:04.500 --> 00:00:05.500\nÀ bientôt\n"
FR_CUES = [(1000, 3250), (4500, 5500)]
PICTURE = ("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}:duration={SECONDS}")
NOISE = 3  # pixels a re-encode may move by more than the threshold
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def sources(s3, tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("subtitled")
    (d / "en.srt").write_text(SRT)
    (d / "talk.fr.vtt").write_text(FR_VTT)
    folder = f"subtitled-{uuid.uuid4().hex[:6]}"
    ffmpeg(*PICTURE, "-i", str(d / "en.srt"), "-map", "0:v", "-map", "1", *X264, "-c:s", "srt",
           "-metadata:s:s:0", "language=eng", "-disposition:s:0", "default", str(d / "talk.mkv"))  # fmt: skip
    ffmpeg(*PICTURE, "-i", str(d / "en.srt"), "-map", "0:v", "-map", "1", *X264, "-c:s", "mov_text",
           "-metadata:s:s:0", "language=deu", str(d / "clip.mp4"))  # fmt: skip
    keys = {"mkv": f"{folder}/talk.mkv", "sidecar": f"{folder}/talk.fr.vtt", "mp4": f"{folder}/clip.mp4"}
    s3.upload_file(str(d / "talk.mkv"), "mpr-media-in", keys["mkv"])
    s3.upload_file(str(d / "talk.fr.vtt"), "mpr-media-in", keys["sidecar"])
    s3.upload_file(str(d / "clip.mp4"), "mpr-media-in", keys["mp4"])
    return keys


def submit(api, **body) -> dict:
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job"]


def attributes(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])}


def cue_times(paths: list[Path], bounds: list[int] | None = None) -> list[tuple[int, int]]:
    parts = [webvtt.parse(p.read_text()) for p in paths]
    cues = webvtt.merge(parts, bounds) if bounds else parts[0]
    return [(c.start, c.end) for c in cues]


def within_a_frame(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> bool:
    return len(got) == len(want) and all(
        abs(a - b) <= FRAME_MS for g, w in zip(got, want, strict=True) for a, b in zip(g, w, strict=True)
    )


def package(api, s3, tmp_path, source: str, names: list[str]) -> tuple[str, str]:
    job = submit(api, kind="package", source_key=source)
    parent = wait_job(api, job["id"], timeout=180)["job"]
    assert parent["status"] == "completed", parent
    assert sorted(c.removeprefix(job["id"] + "-") for c in parent["children"]) == sorted(["360p", *names])
    for key in parent["output_keys"]:
        s3.download_file("mpr-media-out", key, str(tmp_path / key.rsplit("/", 1)[1]))
    return (tmp_path / "master.m3u8").read_text(), (tmp_path / "manifest.mpd").read_text()


def test_a_subtitle_stream_and_a_sidecar_become_tracks_with_their_cue_times(api, s3, sources, tmp_path):
    master, mpd_text = package(api, s3, tmp_path, sources["mkv"], ["subs-en", "subs-fr"])
    media = [attributes(line) for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert [(m["TYPE"], m["GROUP-ID"], m["NAME"], m["LANGUAGE"], m["DEFAULT"], m["AUTOSELECT"], m["URI"])
            for m in media] == [
        ("SUBTITLES", "subs", "en", "en", "YES", "YES", "subs-en.m3u8"),
        ("SUBTITLES", "subs", "fr", "fr", "NO", "YES", "subs-fr.m3u8"),
    ]  # fmt: skip
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert variants and all('SUBTITLES="subs"' in v for v in variants)

    mpd = ET.fromstring(mpd_text)
    texts = [s for s in mpd.findall("d:Period/d:AdaptationSet", NS) if s.get("contentType") == "text"]
    assert [(s.get("lang"), s.get("mimeType")) for s in texts] == [("en", "text/vtt"), ("fr", "text/vtt")]
    assert [s.findtext("d:Representation/d:BaseURL", namespaces=NS) for s in texts] == [
        "subs-en.vtt",
        "subs-fr.vtt",
    ]

    for name, want in (("subs-en", EN_CUES), ("subs-fr", FR_CUES)):
        playlist = (tmp_path / f"{name}.m3u8").read_text()
        segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        assert segments == [f"{name}_00000.vtt", f"{name}_00001.vtt"]  # 4 s segments of a 6 s source
        assert all(webvtt.TIMESTAMP_MAP in (tmp_path / s).read_text() for s in segments)
        bounds = webvtt.boundaries(SECONDS * 1000, 4000)
        assert within_a_frame(cue_times([tmp_path / s for s in segments], bounds), want), name
        assert within_a_frame(cue_times([tmp_path / f"{name}.vtt"]), want), name  # the DASH file
    # the cue across the boundary is in both segments (players drop the repeat)
    assert len(webvtt.parse((tmp_path / "subs-en_00001.vtt").read_text())) == 1


def test_a_mov_text_stream_becomes_a_track(api, s3, sources, tmp_path):
    master, _ = package(api, s3, tmp_path, sources["mp4"], ["subs-de"])
    (media,) = [attributes(line) for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert (media["TYPE"], media["LANGUAGE"], media["NAME"]) == ("SUBTITLES", "de", "de")
    bounds = webvtt.boundaries(SECONDS * 1000, 4000)
    segments = [tmp_path / f"subs-de_0000{i}.vtt" for i in range(2)]
    assert within_a_frame(cue_times(segments, bounds), EN_CUES)


def test_a_language_the_source_lacks_fails_the_package_and_the_burn_in_with_the_reason(api, sources):
    job = submit(api, kind="package", source_key=sources["mkv"], subtitle_languages=["ja"])
    ended = wait_job(api, job["id"], timeout=120)["job"]
    assert (ended["status"], ended["failure_reason"]) == ("failed", "invalid"), ended
    assert "no subtitles in ja" in ended["error"] and "en, fr" in ended["error"]
    job = submit(api, kind="transcode", source_key=sources["mkv"], burn_subtitles="ja")
    ended = wait_job(api, job["id"], timeout=120)["job"]
    assert (ended["status"], ended["failure_reason"]) == ("failed", "invalid"), ended
    assert "burn_subtitles: the source has no subtitles in ja" in ended["error"]
    bad = api.post(
        "/api/jobs", json={"kind": "package", "source_key": sources["mkv"], "subtitle_languages": ["x"]}
    )
    assert bad.status_code == 400 and "subtitle_languages" in bad.text


# Cues before the trim's range (2-5 s), across its start, inside it and across its end.
TRIM_SRT = (
    "1\n00:00:00,300 --> 00:00:01,200\nBefore\n\n2\n00:00:01,500 --> 00:00:02,800\nAcross the start\n\n"
    "3\n00:00:03,200 --> 00:00:04,100\nInside\n\n4\n00:00:04,600 --> 00:00:05,600\nAcross the end\n\n"
)
TRIM_CUES = [(0, 800), (1200, 2100), (2600, 3000)]  # on the output's timeline, cut at 0 and 3 s
TRIM_SIDECAR = "WEBVTT\n\n00:00.500 --> 00:01.000\nGone\n\n00:04.500 --> 00:06.000\nKept, cut\n"
TRIM_SIDECAR_CUES = [(2500, 3000)]


@pytest.fixture(scope="module")
def film(s3, tmp_path_factory) -> str:
    """An MKV (key frames every second, no B-frames) with a French SRT stream, and an English WebVTT
    sidecar beside it."""
    d = tmp_path_factory.mktemp("trim-subs")
    (d / "in.srt").write_text(TRIM_SRT)
    ffmpeg(*PICTURE, "-i", str(d / "in.srt"), "-map", "0:v", "-map", "1", *X264, "-c:s", "srt",
           "-metadata:s:s:0", "language=fre", str(d / "film.mkv"))  # fmt: skip
    folder = f"trim-subs-{uuid.uuid4().hex[:6]}"
    s3.upload_file(str(d / "film.mkv"), "mpr-media-in", f"{folder}/film.mkv")
    s3.put_object(Bucket="mpr-media-in", Key=f"{folder}/film.en.vtt", Body=TRIM_SIDECAR.encode())
    return f"{folder}/film.mkv"


def trimmed(api, s3, tmp_path, film: str, **body) -> tuple[list[tuple], dict[int, list[tuple[int, int]]]]:
    """The trim's output: its streams (type, codec, language) and each stream's packets as cue times
    (ms on its timeline)."""
    folder = film.rsplit("/", 1)[0]
    job = submit(api, kind="trim", source_key=film, output_key=f"{folder}/{uuid.uuid4().hex[:6]}.mp4", **body)
    done = wait_job(api, job["id"], timeout=120)["job"]
    assert done["status"] == "completed", done
    s3.download_file("mpr-media-out", done["output_key"], str(tmp_path / "cut.mp4"))
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name:stream_tags=language:"
         "packet=stream_index,pts_time,duration_time,size", "-of", "json", str(tmp_path / "cut.mp4")],
        check=True, capture_output=True).stdout)  # fmt: skip
    streams = [
        (s["codec_type"], s["codec_name"], s.get("tags", {}).get("language")) for s in probe["streams"]
    ]
    # mov_text fills the gaps between cues with empty samples (a 2-byte length of 0)
    times: dict[int, list[tuple[int, int]]] = {}
    for p in probe["packets"]:
        if int(p["size"]) > 2 or streams[p["stream_index"]][0] != "subtitle":
            t, d = float(p["pts_time"]), float(p.get("duration_time") or 0)
            times.setdefault(p["stream_index"], []).append((round(t * 1000), round((t + d) * 1000)))
    return streams, times


def test_a_trim_keeps_a_subtitle_stream_and_a_sidecar_with_their_cues_cut_to_the_range(
    api, s3, film, tmp_path
):
    streams, cues = trimmed(api, s3, tmp_path, film, start=2.0, end=5.0)
    assert streams == [
        ("video", "h264", "und"),
        ("subtitle", "mov_text", "fra"),
        ("subtitle", "mov_text", "eng"),
    ]
    assert within_a_frame(cues[1], TRIM_CUES), cues[1]
    assert within_a_frame(cues[2], TRIM_SIDECAR_CUES), cues[2]
    assert abs(len(cues[0]) - 3 * FPS) <= 1  # the picture is the range's, as without subtitles


# From 2.5 s to 5 s: a copy starts at the key frame at 2 s (its time 0), a re-encode at 2.5 s.
ONE_COMMAND_CUES = {
    "copy": ([(0, 800), (1200, 2100), (2600, 3000)], [(2500, 3000)]),
    "h264-480p": ([(0, 300), (700, 1600), (2100, 2500)], [(2000, 2500)]),
}


# The picture: (frames, first and last frame's time in ms). A copy's, from the key frame at 2 s to the last
# frame before 5 s (3 s, not the 2.5 s asked for). A re-encode's, the source's frames shown from 2.5 s to
# 5 s, 2.52 to 4.96 s, on a timeline from 2.5 s: 62 frames of 40 ms, the first 20 ms after its time 0.
# (ffprobe gives these MP4s' frames no duration: last minus first, 2.44 s, is one frame short.)
ONE_COMMAND_PICTURE = {"copy": (75, 0, 2960), "h264-480p": (62, 20, 2460)}


@pytest.mark.parametrize("preset", ["copy", "h264-480p"])
def test_a_copy_or_reencoding_trim_keeps_them_from_where_its_output_starts(api, s3, film, tmp_path, preset):
    streams, cues = trimmed(api, s3, tmp_path, film, start=2.5, end=5.0, preset=preset)
    assert [(kind, language) for kind, _, language in streams] == [
        ("video", "und"),
        ("subtitle", "fra"),
        ("subtitle", "eng"),
    ]
    stream_cues, sidecar_cues = ONE_COMMAND_CUES[preset]
    assert within_a_frame(cues[1], stream_cues), cues[1]
    assert within_a_frame(cues[2], sidecar_cues), cues[2]
    starts = sorted(start for start, _ in cues[0])
    assert (len(starts), starts[0], starts[-1]) == ONE_COMMAND_PICTURE[preset], starts
    assert {b - a for a, b in zip(starts, starts[1:], strict=False)} == {FRAME_MS}  # none lost or repeated


def gray(path: Path, times: list[float]) -> dict[float, bytes]:
    """The 8-bit luma picture shown at each of ``times`` (the first frame at or after it, as an accurate
    seek finds it): one FFmpeg run picks them all."""
    picks = "+".join(f"between(t,{t - 0.001},{t + 1 / FPS - 0.001})" for t in sorted(times))
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select='{picks}'", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout  # fmt: skip
    size = 320 * 180
    assert len(raw) == size * len(times), (path.name, len(raw) / size, times)
    return {t: raw[i * size : (i + 1) * size] for i, t in enumerate(sorted(times))}


def changed(a: bytes, b: bytes, rows: range, width: int = 320) -> int:
    """Pixels of ``rows`` that differ by far more than compression noise (a stray one or two may)."""
    return sum(1 for i in range(rows.start * width, rows.stop * width) if abs(a[i] - b[i]) > 60)


def test_a_burnt_in_track_shows_where_and_while_its_cues_do(api, s3, sources, tmp_path):
    for name in ("fr", "en"):  # the sidecar, the stream
        job = submit(
            api, kind="transcode", source_key=sources["mkv"], burn_subtitles=name, preset="h264-480p"
        )
        done = wait_job(api, job["id"], timeout=120)["job"]
        assert done["status"] == "completed", done
        s3.download_file("mpr-media-out", done["output_key"], str(tmp_path / f"{name}.mp4"))
    s3.download_file("mpr-media-in", sources["mkv"], str(tmp_path / "source.mkv"))
    cases = {"en": ([1.0, 3.0], [0.2, 2.0, 5.5]), "fr": ([2.0, 5.0], [0.5, 4.0])}
    source = gray(tmp_path / "source.mkv", sorted({t for times in cases.values() for t in sum(times, [])}))
    for name, (shown, hidden) in cases.items():
        out = gray(tmp_path / f"{name}.mp4", shown + hidden)
        for t in shown:  # the text at the bottom, nothing above it
            a, b = source[t], out[t]
            assert changed(a, b, range(120, 180)) > 50 and changed(a, b, range(0, 90)) <= NOISE, (name, t)
        for t in hidden:
            a, b = source[t], out[t]
            assert changed(a, b, range(0, 180)) <= NOISE, (name, t)


def test_the_assets_metadata_lists_its_subtitle_streams_and_sidecars(api, sources):
    scan = api.post("/api/assets/scan", json={"prefix": sources["mkv"].rsplit("/", 1)[0] + "/"})
    assert scan.status_code in (200, 202), scan.text

    def probed(key):
        items = api.get("/api/assets", params={"prefix": key}).json()["items"]
        return items[0] if items and items[0]["probe_status"] == "ok" else None

    mkv = wait_for(lambda: probed(sources["mkv"]), 60, what="the MKV's probe")
    assert mkv["info"]["subtitle_streams"] == [
        {"index": 0, "codec": "subrip", "language": "en", "default": True}
    ]
    mp4 = wait_for(lambda: probed(sources["mp4"]), 60, what="the MP4's probe")
    assert mp4["info"]["subtitle_streams"] == [
        {"index": 0, "codec": "mov_text", "language": "de", "default": True}
    ]
    # One asset's view lists the subtitle files beside it (a page of assets does not list them).
    assert mkv["sidecars"] is None
    one = api.get(f"/api/assets/{mkv['id']}").json()
    assert one["sidecars"] == [{"key": sources["sidecar"], "language": "fr"}]
    assert api.get(f"/api/assets/{mp4['id']}").json()["sidecars"] == []
    query = "query($id: String!) { asset(id: $id) { sidecars { key language } } }"
    answer = api.post("/graphql", json={"query": query, "variables": {"id": mkv["id"]}}).json()
    assert answer == {"data": {"asset": {"sidecars": [{"key": sources["sidecar"], "language": "fr"}]}}}
