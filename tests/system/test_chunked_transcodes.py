"""Chunked transcodes end to end on real servers (the test stack: nats-server, the S3 server, two
transcoders, the catalog, the API): one ``transcode`` request of a source longer than ``chunk_seconds``
→ video chunk child jobs spread over both transcoders and one child for the sound → one MP4 joined by
stream copy, once, into the transcode's output key, the parts removed. The output is checked against
the source and against the same transcode with ``chunk_seconds: 0``; the source's scene cuts, found by
its chunks on the way, are kept in ``mpr-scenes``; a cancelled one leaves no part."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from mpr_common.jobs import CHUNK_SUFFIX
from mpr_common.presets import AUDIO_RENDITION
from mpr_transcoder.kinds.rendition import cmaf
from tests.media import ffmpeg, make_video
from tests.system.conftest import wait_for
from tests.system.job_waits import wait_job
from tests.system.test_chunked_renditions import psnrs
from tests.system.test_packages import ffprobe, listed, submit
from tests.system.test_scenes import _entry

pytestmark = pytest.mark.system

SECONDS = 24
RATE = 10  # frames are what the joins are checked on: 240 of them, each a 1/10 s step
CHUNK_SECONDS = 6  # four chunks: 0-6, 6-12, 12-18, 18-24 s
CHUNKS = 4
AAC_FRAME = 1024 / 48000
# four different test patterns: hard cuts at 4.3, 9.7 and 15.1 s, inside chunks 0, 1 and 2
CUTS = (4.3, 9.7, 15.1)
CLIPS = ("testsrc2", "smptehdbars", "testsrc", "rgbtestsrc")


@pytest.fixture(scope="module")
def source(s3, tmp_path_factory) -> tuple[str, str, Path]:
    """The film under two keys: the chunked transcode's and the unchunked one's (the scenes of each
    object are kept apart: the chunked one's are those its own chunks found)."""
    path = tmp_path_factory.mktemp("chunked-transcode") / "film.mp4"
    lengths = [b - a for a, b in zip((0, *CUTS), (*CUTS, SECONDS), strict=True)]
    clips = ";".join(
        f"{c}=s=320x180:r={RATE}:d={d:g}[c{i}]" for i, (c, d) in enumerate(zip(CLIPS, lengths, strict=True))
    )
    ffmpeg(
        *("-f", "lavfi", "-i", f"{clips};{''.join(f'[c{i}]' for i in range(4))}concat=n=4:v=1:a=0[out0]"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", str(RATE), "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart", str(path)),
    )
    folder = f"chunkedtc-{uuid.uuid4().hex[:6]}"
    for name in ("film.mp4", "whole.mp4"):
        s3.upload_file(str(path), "mpr-media-in", f"{folder}/{name}")
    return f"{folder}/film.mp4", f"{folder}/whole.mp4", path


def fetch(url: str, path: Path) -> Path:
    with httpx.Client(timeout=60) as web:
        r = web.get(url)
    assert r.status_code == 200
    path.write_bytes(r.content)
    return path


def parts_prefix(output_key: str) -> str:
    return output_key.rsplit(".", 1)[0] + ".parts/"


def test_a_chunked_transcode_is_the_unchunked_transcode_joined_once(stack, api, s3, source, tmp_path):
    key, whole_key, path = source
    chunked = submit(api, kind="transcode", source_key=key, chunk_seconds=CHUNK_SECONDS)
    whole = submit(api, kind="transcode", source_key=whole_key, chunk_seconds=0)
    done = wait_job(api, chunked["id"], timeout=240)
    job = done["job"]
    assert job["status"] == "completed", job
    whole_done = wait_job(api, whole["id"], timeout=240)
    assert whole_done["job"]["status"] == "completed" and not whole_done["job"]["children"]

    # The graph: a child per chunk and one for the sound, the chunks on both transcoders.
    chunks = [f"{job['id']}{CHUNK_SUFFIX.format(index=i)}" for i in range(CHUNKS)]
    assert sorted(job["children"]) == sorted([*chunks, f"{job['id']}-{AUDIO_RENDITION}"]), job["children"]
    workers = {api.get(f"/api/jobs/{c}").json()["job"]["worker"] for c in job["children"]}
    assert len(workers) == 2, "a transcode's chunks are spread over both transcoders"
    # Its completion carries its output as an unchunked transcode's does; no part is left.
    assert job["output_key"] == chunked["output_key"] and job["output_keys"] == [job["output_key"]]
    assert job["output_size"] > 0 and done["output_url"]
    # The source's cuts, each found by the chunk it falls in, kept by the join for the jobs after it.
    assert _entry(stack, "mpr-media-in", key)[0].scenes == pytest.approx(list(CUTS), abs=1 / RATE)
    # The parts go once the completion is recorded (the transcoder that joined them removes them next;
    # a redelivered child's run removes what is left): soon after job.completed, not before it.
    parts = parts_prefix(job["output_key"]).rstrip("/")
    wait_for(lambda: not listed(s3, parts), timeout=60, what="the completed transcode's parts removed")

    out = fetch(done["output_url"], tmp_path / "chunked.mp4")
    boxes = [kind for kind, _, _ in cmaf.iter_boxes(out.read_bytes())]
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart
    # Frame-exact across the joins: the source's frames, one every 1/10 s.
    # the output's packets and streams, one ffprobe
    probed = ffprobe(
        "-show_entries", "packet=stream_index,pts_time:stream=index,codec_type,duration", str(out)
    )
    video = next(s["index"] for s in probed["streams"] if s["codec_type"] == "video")
    packets = [p for p in probed["packets"] if p["stream_index"] == video]
    source_frames = ffprobe("-select_streams", "v:0", "-show_entries", "packet=pts_time", str(path))[
        "packets"
    ]
    assert len(packets) == len(source_frames) == SECONDS * RATE
    times = sorted(round(float(p["pts_time"]) * RATE, 3) for p in packets)
    assert times == [float(i) for i in range(len(times))], "a gap or a repeat at a join"
    streams = {s["codec_type"]: float(s["duration"]) for s in probed["streams"]}
    assert abs(streams["audio"] - streams["video"]) <= AAC_FRAME + 1e-6, streams
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True, text=True
    )
    assert decode.returncode == 0 and decode.stderr.strip() == "", decode.stderr
    # The joins cost nothing measurable against the same transcode in one piece.
    unchunked = fetch(whole_done["output_url"], tmp_path / "whole.mp4")
    chunked_psnr, unchunked_psnr = psnrs([out, unchunked], path)
    assert chunked_psnr == pytest.approx(unchunked_psnr, abs=0.1)


def test_a_cancelled_chunked_transcode_leaves_no_part(api, s3, tmp_path):
    # a minute in 2 s chunks: thirty children, long enough to be cancelled half way
    path = make_video(tmp_path / "long.mp4", seconds=60, size="320x180", rate=RATE)
    key = f"chunkedtc-{uuid.uuid4().hex[:6]}/long.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    job = submit(api, kind="transcode", source_key=key, chunk_seconds=2)

    parts = parts_prefix(job["output_key"]).rstrip("/")

    def some_progress():
        j = api.get(f"/api/jobs/{job['id']}").json()["job"]
        return j if j["children"] and 0 < j["progress"] < 100 and listed(s3, parts) else None

    # cancelled once some parts are up: they must go too
    running = wait_for(some_progress, timeout=120, what="progress of the transcode's chunks", interval=0.1)
    assert running["status"] == "running"
    assert api.post(f"/api/jobs/{job['id']}/cancel").status_code in (200, 202)
    assert wait_job(api, job["id"], timeout=60)["job"]["status"] == "cancelled"
    for child_id in running["children"]:
        assert wait_job(api, child_id, timeout=90)["job"]["status"] in ("cancelled", "completed", "failed")
    wait_for(lambda: not listed(s3, parts), timeout=60, what="the cancelled transcode's parts removed")
    assert not listed(s3, running["output_key"].rsplit("/", 1)[0])
