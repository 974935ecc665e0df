"""Package jobs end to end on real servers: one request → child jobs spread over two transcoders →
keyframe-aligned CMAF renditions, an HLS master playlist and a DASH MPD that play over HTTP; the parent's
progress, cancel cascade, a failing child failing the parent, and re-submission running nothing twice."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobRequested
from tests.media import ffmpeg, make_video
from tests.system.conftest import wait_for
from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def source_file(tmp_path_factory) -> Path:
    """8 s of 854x480 with sound: the 480p and 360p rungs, the audio rendition."""
    return make_video(tmp_path_factory.mktemp("pkg") / "show.mp4", seconds=8, size="854x480")


@pytest.fixture(scope="module")
def source(s3, source_file) -> str:
    key = f"pkg-{uuid.uuid4().hex[:6]}/show.mp4"
    s3.upload_file(str(source_file), "mpr-media-in", key)
    return key


def submit(api, **body) -> dict:
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job"]


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback (what a CDN in front of the output bucket does)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def ffprobe(*args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args], check=True, capture_output=True)
    return json.loads(out.stdout)


def key_frames(url: str) -> list[float]:
    packets = ffprobe("-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", url)["packets"]
    return [round(float(p["pts_time"]), 3) for p in packets if "K" in p["flags"]]


@pytest.fixture(scope="module")
def package(api, source) -> tuple[dict, dict]:
    """A package with a storyboard and normalised sound, as submitted and as it ended: what the first
    test checks, and the completed package that another submits again (one run of the ladder less)."""
    job = submit(api, kind="package", source_key=source, storyboard=True, loudnorm=True)
    return job, wait_job(api, job["id"], timeout=240)["job"]


def test_a_package_is_one_request_many_renditions_and_plays(api, s3, package, served):
    folder_dir, base = served
    job, parent = package
    assert job["preset"] == "abr-h264" and job["output_key"].endswith("/master.m3u8")
    assert parent["status"] == "completed", parent
    names = {c.rsplit("-", 1)[1] for c in parent["children"]}
    assert names == {"480p", "360p", "audio", "storyboard"}, parent["children"]
    for child_id in parent["children"]:
        child = api.get(f"/api/jobs/{child_id}").json()["job"]
        assert (child["status"], child["parent_id"]) == ("completed", job["id"])
    workers = {api.get(f"/api/jobs/{c}").json()["job"]["worker"] for c in parent["children"]}
    assert len(workers) == 2, "children are spread over both transcoders"
    # measured input loudness kept with the output
    assert parent["loudness"]["input_i"] < 0 and parent["loudness"]["target_i"] == -23.0

    # the manifests are the last objects written, and list what the children wrote
    folder = parent["output_key"].rsplit("/", 1)[0]
    keys = parent["output_keys"]
    assert keys[-2:] == [f"{folder}/manifest.mpd", f"{folder}/master.m3u8"]
    for key in keys:
        local = folder_dir / key.rsplit("/", 1)[1]
        s3.download_file("mpr-media-out", key, str(local))
    master = (folder_dir / "master.m3u8").read_text()
    assert master.count("#EXT-X-STREAM-INF") == 2 and "TYPE=AUDIO" in master

    hls = ffprobe("-show_streams", "-show_format", f"{base}/master.m3u8")
    assert {st["codec_name"] for st in hls["streams"]} >= {"h264", "aac"}
    assert float(hls["format"]["duration"]) == pytest.approx(8.0, abs=0.5)
    dash = ffprobe("-show_streams", "-show_format", f"{base}/manifest.mpd")
    heights = sorted(st.get("height", 0) for st in dash["streams"] if st["codec_type"] == "video")
    assert heights == [360, 480]
    assert any(st["codec_type"] == "audio" for st in dash["streams"])
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", f"{base}/manifest.mpd", "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert decode.returncode == 0 and decode.stderr.strip() == "", decode.stderr

    # keyframe-aligned renditions, a key frame every 2 s
    frames = [key_frames(f"{base}/{n}.m3u8") for n in ("480p", "360p")]
    assert frames[0] == frames[1] and frames[0][:4] == pytest.approx([0.0, 2.0, 4.0, 6.0], abs=0.05)
    # storyboard: a WebVTT track into sprite sheets, and a poster
    vtt = (folder_dir / "storyboard.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "#xywh=" in vtt and (folder_dir / "poster.jpg").exists()


def test_resubmitting_a_package_runs_nothing_twice(api, stack, source, package):
    job, first = package
    assert first["status"] == "completed"
    again = api.post("/api/jobs", json={"kind": "package", "source_key": source, "job_id": job["id"]})
    assert again.status_code == 200 and again.json()["job"]["status"] == "completed"

    async def republish_and_count() -> tuple[int, int]:
        # Past the de-duplication window the transcoders still see the job has ended: published again
        # under another message id, nothing is planned or run again.
        nc = await nats.connect(stack.nats.url)
        try:
            js = nc.jetstream()
            before = (await js.stream_info(s.JOBS_STREAM, subjects_filter=s.JOB_CHILD)).state.subjects or {}
            req = JobRequested(job_id=job["id"], kind="package", source_key=source)
            await js.publish(s.JOB_REQUESTED, encode(req), headers={"Nats-Msg-Id": uuid.uuid4().hex})
            await asyncio.sleep(3)
            after = (await js.stream_info(s.JOBS_STREAM, subjects_filter=s.JOB_CHILD)).state.subjects or {}
            return before.get(s.JOB_CHILD, 0), after.get(s.JOB_CHILD, 0)
        finally:
            await nc.close()

    before, after = asyncio.run(republish_and_count())
    assert before == after
    latest = api.get(f"/api/jobs/{job['id']}").json()["job"]
    assert latest["status"] == "completed" and latest["finished_at"] == first["finished_at"]


def listed(s3, folder: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="mpr-media-out", Prefix=folder + "/")
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_a_failing_child_fails_the_package_with_its_reason_and_leaves_nothing_behind(
    api, s3, source, tmp_path
):
    package_id = f"pkg{uuid.uuid4().hex[:8]}"
    folder = source.rsplit(".", 1)[0] + f"/{package_id}"
    # Another job owns the file the 360p rendition would write: that child fails (invalid), for good.
    # (what the squatter encodes is not the point: 2 s of 320x180 of its own, a fraction of the show)
    tiny = f"pkg-{uuid.uuid4().hex[:6]}/tiny.mp4"
    s3.upload_file(str(make_video(tmp_path / "tiny.mp4", seconds=2, size="320x180")), "mpr-media-in", tiny)
    squatter = submit(api, kind="hls", source_key=tiny, output_key=f"{folder}/360p.m3u8")
    wait_job(api, squatter["id"], timeout=120)
    theirs = listed(s3, folder)
    assert f"{folder}/360p.m3u8" in theirs
    submit(api, kind="package", source_key=source, job_id=package_id)
    done = wait_job(api, package_id, timeout=240)["job"]
    assert (done["status"], done["failure_reason"]) == ("failed", "invalid"), done
    assert "360p" in done["error"] and "belongs to job" in done["error"]
    assert not done["output_keys"]

    # The other children stop; what they wrote in the shared folder goes, the squatter's stays.
    for child_id in done["children"]:
        wait_job(api, child_id, timeout=120)
    left = wait_for(
        lambda: listed(s3, folder) == theirs or None, timeout=60, what="only the squatter's files left"
    )
    assert left, listed(s3, folder) - theirs
    # and the package's claims are released: its manifest's name is free for another job
    again = api.post(
        "/api/jobs", json={"kind": "hls", "source_key": source, "output_key": f"{folder}/master.m3u8"}
    )
    assert again.status_code == 202, again.text
    api.post(f"/api/jobs/{again.json()['job']['id']}/cancel")


def test_a_package_is_refused_a_folder_another_package_owns(api, source):
    first = submit(api, kind="package", source_key=source)
    folder = first["output_key"].rsplit("/", 1)[0]
    r = api.post(
        "/api/jobs", json={"kind": "package", "source_key": source, "output_key": f"{folder}/mine.m3u8"}
    )
    assert r.status_code == 409 and f"{folder}/master.m3u8" in r.json()["detail"], r.text
    api.post(f"/api/jobs/{first['id']}/cancel")  # its run is not this test's subject
    wait_job(api, first["id"], timeout=120)


def test_cancelling_a_package_cancels_its_children(api, s3, source_file, tmp_path):
    # 64 s: the source eight times over, copied (no encode), runs long enough to be cancelled
    path = tmp_path / "long.mp4"
    ffmpeg("-stream_loop", "7", "-i", str(source_file), "-c", "copy", "-movflags", "+faststart", str(path))
    key = f"pkg-{uuid.uuid4().hex[:6]}/long.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    job = submit(api, kind="package", source_key=key)
    wait_for(
        lambda: api.get(f"/api/jobs/{job['id']}").json()["job"]["children"],
        timeout=60,
        what="the package's children",
    )

    def some_progress():
        j = api.get(f"/api/jobs/{job['id']}").json()["job"]
        return j if 0 < j["progress"] < 100 else None

    running = wait_for(some_progress, timeout=120, what="weighted progress of the children")
    assert running["status"] == "running"
    assert api.post(f"/api/jobs/{job['id']}/cancel").status_code in (200, 202)
    assert wait_job(api, job["id"], timeout=60)["job"]["status"] == "cancelled"
    for child_id in running["children"]:
        child = wait_job(api, child_id, timeout=90)["job"]
        assert child["status"] in ("cancelled", "completed"), child
    assert any(wait_job(api, c)["job"]["status"] == "cancelled" for c in running["children"])
    folder = running["output_key"].rsplit("/", 1)[0]
    # nothing of the cancelled package is left: not its manifests, nor what its children wrote
    wait_for(lambda: not listed(s3, folder), timeout=60, what="the cancelled package's folder emptied")
