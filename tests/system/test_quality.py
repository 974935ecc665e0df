"""Quality metrics with real FFmpeg: x264's per-frame PSNR and SSIM, read from FFmpeg's report file, are
plausible (identical frames at the cap, a heavily compressed encode lower than a light one) and agree with
a second pass of FFmpeg's own ``psnr`` filter over the output; on the test stack a transcode's completion
and a chunked package's rungs carry them (REST, GraphQL, the catalog's rows), a chunked rung's merged
statistics agreeing with a whole measurement of the stitched rung against the source."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from mpr_common.presets import PRESETS
from mpr_common.quality import PSNR_CAP
from mpr_transcoder.ffmpeg.argv import GLOBAL_ARGS
from mpr_transcoder.kinds.rendition.cmaf import video_filter
from mpr_transcoder.limits import Limits
from mpr_transcoder.quality import encode_measured
from mpr_transcoder.steps import StepRunner
from tests.media import make_video
from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system

LAVFI = ["-f", "lavfi", "-i"]
TOLERANCE = 0.2  # dB between x264's per-frame PSNR and FFmpeg's psnr filter over the decoded output


def encode(tmp: Path, source: str, *quality: str):
    """``source`` (a lavfi graph) encoded by x264 with ``quality`` options, measured by the encoder."""
    runner = StepRunner(Limits(), asyncio.Event(), {}, lambda *a: None, 2.0)
    out = tmp / f"out-{uuid.uuid4().hex[:6]}.mp4"
    args = [*GLOBAL_ARGS, *LAVFI, source, "-c:v", "libx264", "-preset", "veryfast", *quality, str(out)]
    return asyncio.run(encode_measured(runner, args, tmp)), out


def filter_psnr(output: Path, reference: list[str], scale: str = "null") -> list[float]:
    """Each frame's luma PSNR of ``output`` against ``reference`` (input arguments), by FFmpeg's filter:
    a whole second pass, what the encoder's figures are checked against."""
    stats = output.with_suffix(".psnr.log")
    graph = f"[1:v]{scale},setpts=PTS-STARTPTS[ref];[0:v]setpts=PTS-STARTPTS[out];[out][ref]psnr=stats_file={stats}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(output), *reference, "-lavfi", graph, "-f", "null", "-"],
        check=True,
    )
    return [min(PSNR_CAP, float(m[1])) for m in re.finditer(r"psnr_y:(\S+)", stats.read_text())]


def test_identical_frames_score_the_cap_and_compression_scores_lower(tmp_path):
    flat, _ = encode(tmp_path, "color=c=gray:size=320x180:rate=25:duration=2", "-crf", "18")
    assert flat is not None and flat.frames == 50
    assert flat.psnr is not None and flat.psnr.mean == flat.psnr.min == PSNR_CAP
    assert flat.ssim is not None and flat.ssim.min == 1.0

    source = "testsrc2=size=320x180:rate=25:duration=2"
    light, light_out = encode(tmp_path, source, "-crf", "18")
    heavy, _ = encode(tmp_path, source, "-crf", "45")
    assert light is not None and heavy is not None
    assert light.psnr and heavy.psnr and light.ssim and heavy.ssim
    assert (light.width, light.height, light.frames) == (320, 180, 50)
    assert heavy.psnr.mean < light.psnr.mean - 5, (heavy.psnr, light.psnr)
    assert heavy.ssim.mean < light.ssim.mean and heavy.psnr.p5 < light.psnr.p5
    assert light.psnr.min <= light.psnr.p5 <= light.psnr.mean < PSNR_CAP

    # the encoder's figures are the output's: a second pass over the file finds the same, within what
    # x264 reads on B frames no other frame references (up to ~0.15 dB lower)
    second = filter_psnr(light_out, [*LAVFI, source])
    assert len(second) == light.frames
    assert abs(sum(second) / len(second) - light.psnr.mean) < TOLERANCE
    assert abs(min(second) - light.psnr.min) < TOLERANCE


def test_outputs_another_encoder_or_a_copy_makes_are_not_measured(tmp_path):
    runner = StepRunner(Limits(), asyncio.Event(), {}, lambda *a: None, 1.0)
    out = tmp_path / "o.webm"
    src = "testsrc2=size=160x90:rate=10:duration=1"
    args = [*GLOBAL_ARGS, *LAVFI, src, "-c:v", "libvpx-vp9", "-deadline", "realtime", str(out)]
    assert asyncio.run(encode_measured(runner, args, tmp_path)) is None  # absent, never 0
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def source(s3, tmp_path_factory) -> tuple[str, Path]:
    path = make_video(tmp_path_factory.mktemp("quality") / "q.mp4", seconds=8, size="854x480", rate=10)
    key = f"quality-{uuid.uuid4().hex[:6]}/q.mp4"
    s3.upload_file(str(path), "mpr-media-in", key)
    return key, path


def graphql_quality(api, job_id: str) -> dict:
    query = (
        f'{{ job(id: "{job_id}") {{ quality {{ frames width height psnr {{ mean min p5 }} ssim {{ mean }} }} '
        "renditionQuality { rendition quality { frames psnr { mean } ssim { mean } } } } }"
    )
    r = api.post("/graphql", json={"query": query})
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return r.json()["data"]["job"]


def test_a_transcode_carries_its_quality(api, source):
    key, _ = source
    r = api.post("/api/jobs", json={"kind": "transcode", "source_key": key, "preset": "h264-480p"})
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"], timeout=180)["job"]
    assert job["status"] == "completed", job
    q = job["quality"]
    assert q["frames"] == 80 and (q["width"], q["height"]) == (854, 480), q
    assert 25 < q["psnr"]["min"] <= q["psnr"]["p5"] <= q["psnr"]["mean"] <= PSNR_CAP
    assert 0.5 < q["ssim"]["mean"] <= 1.0 and "frame_psnr" not in q
    g = graphql_quality(api, job["id"])
    assert g["quality"]["psnr"]["mean"] == q["psnr"]["mean"] and g["renditionQuality"] == []


def test_a_chunked_package_carries_each_rungs_quality(api, source, tmp_path):
    key, path = source
    job_id = f"qpk{uuid.uuid4().hex[:8]}"
    r = api.post(
        "/api/jobs", json={"kind": "package", "source_key": key, "job_id": job_id, "chunk_seconds": 4}
    )
    assert r.status_code == 202, r.text
    done = wait_job(api, job_id, timeout=300)
    job = done["job"]
    assert job["status"] == "completed", job
    rungs = job["rendition_quality"]
    assert sorted(rungs) == ["360p", "480p"], rungs
    for q in rungs.values():
        assert q["frames"] == 80 and 25 < q["psnr"]["min"] <= q["psnr"]["mean"] < PSNR_CAP, q
    assert job["quality"] is None  # a package's own output is its manifests
    chunks = [c for c in job["children"] if "-c0" in c]
    assert len(chunks) == 4, job["children"]  # two rungs, two chunks each
    for c in chunks:
        part = api.get(f"/api/jobs/{c}").json()["job"]
        assert part["quality"]["frames"] == 40 and "frame_psnr" not in part["quality"], part
    g = graphql_quality(api, job_id)
    assert {x["rendition"] for x in g["renditionQuality"]} == {"360p", "480p"}

    # The chunked rung's merged statistics are those of the stitched rendition, measured whole
    rung = next(r for r in PRESETS["abr-h264"].ladder if r.name == "480p")
    playlist = done["output_url"].rsplit("/", 1)[0] + "/480p.m3u8"
    local = tmp_path / "480p.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", playlist, "-c", "copy", str(local)], check=True)
    second = filter_psnr(local, ["-i", str(path)], video_filter(rung))
    merged = rungs["480p"]["psnr"]
    assert len(second) == 80
    assert abs(sum(second) / len(second) - merged["mean"]) < TOLERANCE, (merged, sum(second) / len(second))
    assert abs(min(second) - merged["min"]) < TOLERANCE
    assert abs(sorted(second)[3] - merged["p5"]) < TOLERANCE  # nearest rank: the 4th lowest of 80


def test_a_chunked_transcode_carries_the_quality_of_all_its_chunks_frames(api, source):
    key, _ = source
    body = {"kind": "transcode", "source_key": key, "preset": "h264-480p", "chunk_seconds": 4}
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"], timeout=180)["job"]
    assert job["status"] == "completed", job
    chunks = [c for c in job["children"] if "-c0" in c]
    assert len(chunks) == 2, job["children"]
    parts = [api.get(f"/api/jobs/{c}").json()["job"]["quality"] for c in chunks]
    assert [p["frames"] for p in parts] == [40, 40], parts
    q = job["quality"]
    assert q["frames"] == 80 and q["psnr"]["min"] == min(p["psnr"]["min"] for p in parts), (q, parts)
    means = sum(p["psnr"]["mean"] * p["frames"] for p in parts) / 80
    assert abs(q["psnr"]["mean"] - means) < 1e-3  # the mean of all frames, from the chunks' own
