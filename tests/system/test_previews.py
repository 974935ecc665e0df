"""The preview kind with real FFmpeg through run_job on moto's S3 server: animated WebP and GIF of the
asked size, looping, made of clips from evenly spread moments (a source whose red level is its clock
tells which); a source shorter than the clips makes a shorter preview, never an error; a source without
picture fails with the reason."""

from __future__ import annotations

import asyncio
import re
import struct
import subprocess
from pathlib import Path

import pytest

from mpr_common import storage
from mpr_common.events import JobRequested
from mpr_transcoder.pipeline import JobError, run_job
from tests import moto_s3
from tests.media import ffmpeg

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings

RAMP = "pv/ramp.mp4"  # 12 s whose red level is 20 x the time in seconds
SHORT = "pv/short.mp4"  # 0.6 s
TONE = "pv/tone.m4a"  # sound only
RED_PER_SECOND = 20


@pytest.fixture(scope="module")
def uploaded(s3_settings, tmp_path_factory) -> None:
    d = tmp_path_factory.mktemp("pv")
    ramp, short, tone = d / "ramp.mp4", d / "short.mp4", d / "tone.m4a"
    enc = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    # geq evaluates its expression at every pixel: on 32x18, scaled up (a flat colour stays the same)
    ramp_graph = f"color=s=32x18:r=25:d=12,geq=r='T*{RED_PER_SECOND}':g=0:b=0,scale=320:180"
    ffmpeg("-f", "lavfi", "-i", ramp_graph, *enc, str(ramp))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=0.6", *enc, str(short))
    ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", str(tone))
    s3 = storage.get_s3_client(s3_settings)
    for path, key in ((ramp, RAMP), (short, SHORT), (tone, TONE)):
        s3.upload_file(str(path), "t-in", key)


def preview(s3_settings, tmp_path: Path, source: str, output_key: str, **options) -> Path:
    s3 = storage.get_s3_client(s3_settings)
    job = JobRequested(
        job_id=output_key.replace("/", "-").replace(".", "-"),
        kind="preview",
        source_key=source,
        output_key=output_key,
        preview=options or None,
    )
    out = asyncio.run(
        run_job(job, s3=s3, s3_settings=s3_settings, workdir=tmp_path / "w", on_progress=lambda p, r: None)
    )
    assert out.output_keys == [output_key]
    local = tmp_path / Path(output_key).name
    s3.download_file("t-out", output_key, str(local))
    return local


def webp_animation(path: Path) -> tuple[int, int, int, int]:
    """(canvas width, height, loop count, frames) of an animated WebP, read from its RIFF chunks (FFmpeg
    5.1 does not decode animated WebP)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos, width, height, loops, frames = 12, 0, 0, -1, 0
    while pos + 8 <= len(data):
        fourcc, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if fourcc == b"VP8X":
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
        elif fourcc == b"ANIM":
            loops = struct.unpack_from("<H", body, 4)[0]
        elif fourcc == b"ANMF":
            frames += 1
        pos += 8 + size + (size & 1)
    return width, height, loops, frames


def gif_frames(path: Path) -> tuple[int, int, list[int]]:
    """(width, height, the mean red level of each frame) of a GIF, decoded by FFmpeg in one run: each
    frame a PPM, whose header gives the size."""
    data = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "image2pipe", "-c:v", "ppm", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    sizes, reds, pos = set(), [], 0
    while pos < len(data):
        header = re.compile(rb"P6\s(\d+)\s(\d+)\s255\s").match(data, pos)
        assert header, data[pos : pos + 20]
        w, h = int(header[1]), int(header[2])
        sizes.add((w, h))
        pos = header.end() + w * h * 3
        assert pos <= len(data)
        reds.append(sum(data[header.end() : pos : 3]) // (w * h))  # the red channel's mean
    ((w, h),) = sizes
    return w, h, reds


def test_an_animated_webp_of_the_asked_size_that_loops(s3_settings, uploaded, tmp_path):
    width, height, loops, frames = webp_animation(preview(s3_settings, tmp_path, RAMP, "pv/out/ramp.webp"))
    assert (width, height) == (320, 180)  # the default width, the source's aspect
    assert loops == 0  # forever
    # 6 clips of 1 s at 10 fps; the encoder may merge frames that did not change
    assert 6 <= frames <= 60


def test_a_gif_is_made_of_clips_from_evenly_spread_moments(s3_settings, uploaded, tmp_path):
    out = preview(s3_settings, tmp_path, RAMP, "pv/out/ramp.gif", clips=3, clip_seconds=1.0, width=160, fps=5)
    w, h, reds = gif_frames(out)
    assert (w, h) == (160, 90)
    assert len(reds) == 15  # 3 clips x 1 s x 5 fps
    times = [r / RED_PER_SECOND for r in reds]
    # clips centred on 2, 6 and 10 s of the 12 s source: 1.5-2.5, 5.5-6.5, 9.5-10.5
    for i, (lo, hi) in enumerate([(1.5, 2.5), (5.5, 6.5), (9.5, 10.5)]):
        clip = times[5 * i : 5 * i + 5]
        assert all(lo - 0.3 <= t <= hi + 0.3 for t in clip), (i, clip)


def test_a_source_shorter_than_the_clips_makes_a_shorter_preview(s3_settings, uploaded, tmp_path):
    w, h, reds = gif_frames(preview(s3_settings, tmp_path, SHORT, "pv/out/short.gif", fps=10))
    assert (w, h) == (320, 180) and 2 <= len(reds) <= 7  # one clip of the whole 0.6 s


def test_a_source_without_picture_fails_with_the_reason(s3_settings, uploaded, tmp_path):
    with pytest.raises(JobError) as failed:
        preview(s3_settings, tmp_path, TONE, "pv/out/tone.webp")
    assert failed.value.reason == "invalid" and "no video stream" in str(failed.value)
