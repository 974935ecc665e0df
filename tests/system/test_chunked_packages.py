"""Chunked, progressive packages end to end on real servers (the test stack: nats-server, the S3
server, two transcoders, the catalog, the API): one request → every rung cut into chunk child jobs
spread over both transcoders → one rendition per rung, stitched once, with exactly the source's frames
and a key frame every GOP across the joins; the package is announced playable (``job.playable`` on the
event stream, ``playable_url`` on the job) before it completes, and what was playable then is a prefix
of what it ends with. An AV1 ladder at a whole number of frames per GOP is chunked too, and stitched
into the manifests its unchunked package writes."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from mpr_common.jobs import CHUNK_SUFFIX
from mpr_common.presets import DEFAULT_PRESET, PRESETS
from tests.media import make_video
from tests.system.conftest import wait_for
from tests.system.job_waits import wait_job
from tests.system.test_event_stream import events
from tests.system.test_packages import ffprobe

pytestmark = pytest.mark.system

SECONDS = 16
RATE = 10  # frames are what the joins are checked on: 160 of them, each a 1/10 s step
LADDER = PRESETS[DEFAULT_PRESET["package"]]
SEGMENT = LADDER.hls_segment_seconds or 0  # 4 s
# Two segments a chunk, and the first chunk one segment (what plays first is ready first): 0-4, 4-12,
# 12-16 s, three chunks a rung with joins inside and between multi-segment chunks.
CHUNK_SECONDS = 2 * SEGMENT
CHUNKS = 3


@pytest.fixture(scope="module")
def source(s3, tmp_path_factory) -> tuple[str, Path]:
    path = make_video(
        tmp_path_factory.mktemp("chunked") / "show.mp4", seconds=SECONDS, size="854x480", rate=RATE
    )
    key = f"chunked-{uuid.uuid4().hex[:6]}/show.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    return key, path


def video_packets(url: str) -> list[dict]:
    return ffprobe("-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags", url)[
        "packets"
    ]


def segments(playlist: str) -> list[str]:
    """The segments a playlist lists, by name (the signed link presigns each one afresh)."""
    return [line.split("?")[0] for line in playlist.splitlines() if line and not line.startswith("#")]


def test_a_chunked_package_is_playable_before_it_completes_and_ends_frame_exact(api, s3, source):
    key, path = source
    job_id = f"chk{uuid.uuid4().hex[:8]}"
    ended = {"job.completed", "job.failed", "job.cancelled"}

    def is_package(e: dict) -> bool:  # the stream of a job carries its children's events too
        return e["data"]["job_id"] == job_id

    with api.stream("GET", "/api/events", params={"job_id": job_id}, timeout=60) as r:
        assert r.status_code == 200
        submitted = api.post(
            "/api/jobs",
            json={"kind": "package", "source_key": key, "job_id": job_id, "chunk_seconds": CHUNK_SECONDS},
        )
        assert submitted.status_code == 202, submitted.text
        lines = r.iter_lines()
        seen = events(lines, lambda e: is_package(e) and e["event"] in ended | {"job.playable"}, timeout=240)
        assert seen[-1]["event"] == "job.playable", [e["event"] for e in seen if is_package(e)]
        # What a player fetches the moment it is told: the master and a rung's EVENT playlist.
        # the catalog records the event it was told of (the same stream, read on its own)
        early = wait_for(
            lambda: (got := api.get(f"/api/jobs/{job_id}").json()["job"])["playable_url"] and got,
            30,
            what="playable_url",
        )
        assert early["playable_at"] and early["status"] in ("running", "completed"), early
        with httpx.Client(timeout=30) as web:
            master_then = web.get(early["playable_url"])
            assert master_then.status_code == 200 and "#EXT-X-STREAM-INF" in master_then.text
            rung_url = early["playable_url"].rsplit("/", 1)[0] + "/480p.m3u8"
            rung_then = web.get(rung_url).text
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in rung_then and segments(rung_then), rung_then
        seen += events(lines, lambda e: is_package(e) and e["event"] in ended, timeout=240)
    assert seen[-1]["event"] == "job.completed", seen[-1]
    assert [e["event"] for e in seen].count("job.playable") == 1

    done = wait_job(api, job_id, timeout=60)
    job = done["job"]
    assert job["status"] == "completed" and job["playable_at"] <= job["finished_at"], job
    chunks = [
        f"{job_id}-{rung}{CHUNK_SUFFIX.format(index=i)}" for rung in ("480p", "360p") for i in range(CHUNKS)
    ]
    assert sorted(c for c in job["children"] if "-c0" in c) == sorted(chunks), job["children"]
    assert f"{job_id}-480p" not in job["children"]  # a chunked rung has no child of its own
    workers = {api.get(f"/api/jobs/{c}").json()["job"]["worker"] for c in chunks}
    assert len(workers) == 2, "a title's chunks are spread over both transcoders"

    # Stitched once: no chunk's own playlist left, every segment listed once, the list ended.
    folder = job["output_key"].rsplit("/", 1)[0]
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="mpr-media-out", Prefix=folder + "/")["Contents"]}
    assert not [k for k in listed if "-c0" in k.rsplit("/", 1)[1]], sorted(listed)
    base = done["output_url"].rsplit("/", 1)[0]
    with httpx.Client(timeout=30) as web:
        rung_end = web.get(f"{base}/480p.m3u8").text
    names = segments(rung_end)
    assert len(names) == len(set(names)) == SECONDS // SEGMENT and rung_end.rstrip().endswith(
        "#EXT-X-ENDLIST"
    )
    # what was playable then is where the final list starts: a playlist only grows
    assert names[: len(segments(rung_then))] == segments(rung_then)

    # Frame-exact across the joins: the source's frames, one every 1/25 s, key frames every 2 s.
    source_frames = len(video_packets(str(path)))
    for rung in ("480p", "360p"):
        packets = video_packets(f"{base}/{rung}.m3u8")
        assert len(packets) == source_frames == SECONDS * RATE, rung
        times = sorted(round(float(p["pts_time"]) * RATE) for p in packets)
        assert times == list(range(times[0], times[0] + len(times))), f"{rung}: a gap or repeat at a join"
        keys = [round(float(p["pts_time"]) - times[0] / RATE, 3) for p in packets if "K" in p["flags"]]
        gop = LADDER.gop_seconds or 0.0
        assert keys == [i * gop for i in range(round(SECONDS / gop))], (rung, keys)
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", done["output_url"], "-f", "null", "-"], capture_output=True, text=True
    )
    assert decode.returncode == 0 and decode.stderr.strip() == "", decode.stderr


AV1_SECONDS = 9  # segments 0-4, 4-8, 8-9 s: chunks 0-4 and 4-9 s (a 1 s tail joins the chunk before)
AV1_CHUNKS = {"av1-360p": [1, 2], "360p": [1, 2]}  # each rung's chunks, by their segments in the plan


def without_rates(text: str) -> str:
    """A manifest with its bit rates left out: what a chunked rung's (measured chunk by chunk) may change."""
    return re.sub(r'(BANDWIDTH=|bandwidth=")[0-9]+', r"\1", text)


def test_an_av1_package_is_chunked_at_a_whole_number_of_frames_per_gop(api, s3, tmp_path):
    """abr-av1 on a 160x90 10 fps source (20 frames a 2 s GOP): the AV1 rung is chunked like the H.264
    one, and stitched into what the same package encoded whole writes."""
    path = make_video(tmp_path / "av1.mp4", seconds=AV1_SECONDS, size="160x90", rate=RATE)
    key = f"chunked-av1-{uuid.uuid4().hex[:6]}/show.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    ids = {how: f"av1{how}{uuid.uuid4().hex[:8]}" for how in ("chunked", "whole")}
    for how, seconds in (("chunked", SEGMENT), ("whole", 0)):
        body = {"kind": "package", "source_key": key, "job_id": ids[how], "preset": "abr-av1"}
        submitted = api.post("/api/jobs", json={**body, "chunk_seconds": seconds})
        assert submitted.status_code == 202, submitted.text
    done = {how: wait_job(api, job_id, timeout=240) for how, job_id in ids.items()}
    for how, d in done.items():
        assert d["job"]["status"] == "completed", (how, d["job"])
    job_id, job = ids["chunked"], done["chunked"]["job"]
    # every rung in chunks, none whole; the chord stitched them, which it refuses unless every chunk of
    # a rung wrote the same init segment (sha256) and numbered its segments on from the chunk before
    chunks = [f"{job_id}-{rung}{CHUNK_SUFFIX.format(index=i)}" for rung in AV1_CHUNKS for i in range(2)]
    assert sorted(c for c in job["children"] if "-c0" in c) == sorted(chunks), job["children"]
    assert (
        f"{job_id}-av1-360p" not in job["children"]
        and f"{ids['whole']}-av1-360p" in done["whole"]["job"]["children"]
    )
    folders = {how: d["job"]["output_key"].rsplit("/", 1)[0] for how, d in done.items()}
    prefix = folders["chunked"] + "/"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="mpr-media-out", Prefix=prefix)["Contents"]}
    assert f"{prefix}av1-360p_init.mp4" in listed and not [k for k in listed if ".c0" in k], sorted(listed)

    # as written (a signed link's playlists carry signatures of their own)
    texts = {
        (how, name): s3.get_object(Bucket="mpr-media-out", Key=f"{f}/{name}")["Body"].read().decode()
        for how, f in folders.items()
        for name in ("av1-360p.m3u8", "master.m3u8", "manifest.mpd")
    }
    # each chunk's segments as the plan cut them: 4 s, then 4 + 1 s, numbered on
    rung = texts["chunked", "av1-360p.m3u8"]
    assert segments(rung) == [f"av1-360p_{i:05d}.m4s" for i in range(sum(AV1_CHUNKS["av1-360p"]))], rung
    assert re.findall(r"#EXTINF:([0-9.]+),", rung) == ["4.000000", "4.000000", "1.000000"], rung
    # the master and the MPD as the whole encode writes them, but for the bit rates
    for name in ("master.m3u8", "manifest.mpd"):
        chunked, whole = (without_rates(texts[how, name]) for how in ("chunked", "whole"))
        assert chunked == whole, name
    assert 'CODECS="av01.0.' in texts["chunked", "master.m3u8"]

    # the source's frames, one every 1/10 s across the join, a key frame every 2 s, decoded end to end
    url = done["chunked"]["output_url"].rsplit("/", 1)[0] + "/av1-360p.m3u8"
    packets = video_packets(url)
    times = sorted(round(float(p["pts_time"]) * RATE) for p in packets)
    assert times == list(range(times[0], times[0] + AV1_SECONDS * RATE)), "a gap or repeat at the join"
    keys = [round(float(p["pts_time"]) - times[0] / RATE, 3) for p in packets if "K" in p["flags"]]
    assert keys == [0.0, 2.0, 4.0, 6.0, 8.0], keys
    counted = ffprobe(
        "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", url
    )
    assert int(counted["streams"][0]["nb_read_frames"]) == len(video_packets(str(path))) == AV1_SECONDS * RATE
    decode = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            done["chunked"]["output_url"],
            "-map",
            "0:v",
            "-map",
            "0:a",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
    )
    assert decode.returncode == 0 and decode.stderr.strip() == "", decode.stderr
