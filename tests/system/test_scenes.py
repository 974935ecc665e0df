"""Scene changes on the test stack: a 6 s 320x180 source of three flat grey scenes (cuts at 1.52 s and
4.52 s, soft enough that x264 places no key frame there on its own, and a source encoded with one key
frame) is transcoded, previewed and transcoded again. The first transcode finds the scenes on the way
(its command's detector output) and keeps them in ``mpr-scenes`` with the object's ETag; the preview and
the second transcode read them (the entry is not written again): each of the preview's clips starts
after a cut (even spacing would start the last one before the second cut), and the second transcode has
key frames at both cuts, where the first, which did not know them yet, has none.

A chunked transcode of a 12 s 160x90 10 fps source of four grey scenes (cuts at 3.5, 6 and 8.7 s), in
4 s chunks, once its scenes are kept: its boundaries move from the grid (4 and 8 s) to the cuts near
them (3.5 and 8.7 s, recorded in its plan), the middle chunk forces a key frame at its cut (6 s), and the
joined output holds every source frame once."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import nats
import pytest

from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.scenes import DONE, SourceScenes, scenes_key
from mpr_transcoder.kinds.transcode.graph import TranscodePlan
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system

LEVELS = (0x50, 0x78, 0xA0)  # the three scenes' grey
CUTS = (1.52, 4.52)  # the first frame of the second and third scene (25 fps)
SCENES = ";".join(
    f"color=c=0x{v:02x}{v:02x}{v:02x}:s=320x180:r=25:d={d}[s{i}]"
    for i, (v, d) in enumerate(zip(LEVELS, (1.5, 3, 1.5), strict=True))
)
GRAPH = f"{SCENES};[s0][s1][s2]concat=n=3:v=1:a=0,noise=alls=6:allf=t"
FPS = 10  # the preview's


def _read_kv(stack, bucket: str, key: str) -> tuple[bytes, int]:
    async def read() -> tuple[bytes, int]:
        assert stack.nats is not None
        nc = await nats.connect(stack.nats.url)
        try:
            got = await (await nc.jetstream().key_value(bucket)).get(key)
            return got.value or b"", got.revision or 0
        finally:
            await nc.close()

    return asyncio.run(read())


def _entry(stack, bucket: str, key: str) -> tuple[SourceScenes, int]:
    value, revision = _read_kv(stack, s.SCENES_KV, scenes_key(bucket, key))
    return decode(value, SourceScenes), revision


def _submit(api, body: dict) -> dict:
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"], timeout=180)["job"]
    assert job["status"] == "completed", job
    return job


def _download(s3, job: dict, path: Path) -> Path:
    s3.download_file(job["output_bucket"], job["output_key"], str(path))
    return path


def _key_frames(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey"]
        + ["-show_entries", "frame=pts_time", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [float(t.strip(",")) for t in out.split()]


def test_scenes_are_detected_once_and_place_key_frames_and_preview_clips(stack, api, s3, tmp_path) -> None:
    source = tmp_path / "greys.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", GRAPH, "-c:v", "libx264", "-preset", "ultrafast"]
        + ["-g", "250", "-x264-params", "scenecut=0", "-pix_fmt", "yuv420p", str(source)],
        check=True,
    )
    key = f"scenes-{uuid.uuid4().hex[:6]}/greys.mp4"
    s3.upload_file(str(source), "mpr-media-in", key)
    etag = s3.head_object(Bucket="mpr-media-in", Key=key)["ETag"].strip('"')

    first = _submit(api, {"kind": "transcode", "source_key": key, "output_key": f"{key}.1.mp4"})
    entry, revision = _entry(stack, "mpr-media-in", key)
    assert (entry.state, entry.etag.strip('"'), entry.size) == (DONE, etag, source.stat().st_size)
    assert entry.scenes == pytest.approx(list(CUTS), abs=0.02)

    options = {"clips": 3, "clip_seconds": 1, "width": 32, "fps": FPS}
    preview = _submit(
        api, {"kind": "preview", "source_key": key, "output_key": f"{key}.gif", "preview": options}
    )
    second = _submit(api, {"kind": "transcode", "source_key": key, "output_key": f"{key}.2.mp4"})
    assert _entry(stack, "mpr-media-in", key) == (entry, revision)  # read, not detected again

    assert _key_frames(_download(s3, first, tmp_path / "1.mp4")) == [0.0]
    assert _key_frames(_download(s3, second, tmp_path / "2.mp4")) == pytest.approx([0.0, *CUTS], abs=0.021)

    # the preview's frames, each a grey level: each clip of 1 s (10 frames) wholly within one scene
    gif = _download(s3, preview, tmp_path / "preview.gif")
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(gif), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    side = 32 * 18  # the preview's size: 32 px wide, the source's aspect
    assert len(raw) == 3 * FPS * side  # three clips of 1 s at 10 fps
    means = [sum(raw[i : i + side]) / side for i in range(0, 3 * FPS * side, side)]
    nearest = [min(range(3), key=lambda j: abs(m - LEVELS[j])) for m in means]
    assert nearest == [0] * FPS + [1] * FPS + [2] * FPS, means


CHUNK_CUTS = (3.5, 6.0, 8.7)  # the first frames of the second, third and fourth scene (10 fps)
CHUNK_GREYS = ";".join(
    f"color=c=0x{v:02x}{v:02x}{v:02x}:s=160x90:r=10:d={d}[s{i}]"
    for i, (v, d) in enumerate(zip((0x40, 0x70, 0xA0, 0x70), (3.5, 2.5, 2.7, 3.3), strict=True))
)


def test_a_chunked_transcode_cuts_its_chunks_at_the_kept_scenes(stack, api, s3, tmp_path) -> None:
    source = tmp_path / "four.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"{CHUNK_GREYS};[s0][s1][s2][s3]concat=n=4:v=1:a=0"]
        + ["-vf", "noise=alls=6:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-g", "250"]
        + ["-x264-params", "scenecut=0", "-pix_fmt", "yuv420p", str(source)],
        check=True,
    )
    key = f"scenes-{uuid.uuid4().hex[:6]}/four.mp4"
    s3.upload_file(str(source), "mpr-media-in", key)
    # one piece: finds the scenes on the way, keeps them (no key frame there: x264 places none itself)
    whole = _submit(
        api, {"kind": "transcode", "source_key": key, "output_key": f"{key}.1.mp4", "chunk_seconds": 0}
    )
    assert _entry(stack, "mpr-media-in", key)[0].scenes == pytest.approx(list(CHUNK_CUTS), abs=0.01)
    assert _key_frames(_download(s3, whole, tmp_path / "whole.mp4")) == [0.0]

    chunked = _submit(
        api, {"kind": "transcode", "source_key": key, "output_key": f"{key}.2.mp4", "chunk_seconds": 4}
    )
    assert len(chunked["children"]) == 3  # three chunks (a silent source: no sound child)
    plan = decode(_read_kv(stack, s.PACKAGES_KV, chunked["id"])[0], TranscodePlan)
    assert [c.start for c in plan.spans] == [0.0, 3.5, 8.7] and plan.at_cuts == [3.5, 8.7]  # grid: 4, 8
    out = _download(s3, chunked, tmp_path / "chunked.mp4")
    assert _key_frames(out) == pytest.approx([0.0, *CHUNK_CUTS], abs=0.001)
    frames = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time"]
        + ["-of", "csv=p=0", str(out)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    times = sorted(round(float(t.strip(",")) * 10, 3) for t in frames)
    assert times == [float(i) for i in range(120)]  # the source's 120 frames, once each, no gap
