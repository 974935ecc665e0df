"""Watermarks with real FFmpeg on tiny lavfi media through run_job on the session stack's S3 server: the watermarked
picture differs from the plain one in the watermark's corner and nowhere else, opacity changes the blend,
a text renders, every rung of a package draws the image scaled to the rung; a missing or non-image logo
fails the job with the reason."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpr_common import storage
from mpr_common.events import JobRequested, MediaInfo
from mpr_common.jobs import normalize_job
from mpr_common.mediainfo import probe
from mpr_common.overlays import normalize_watermark
from mpr_common.settings import S3Settings
from mpr_transcoder.ffmpeg.filtergraph import VIDEO_OUT, WatermarkSource, watermark_graph
from mpr_transcoder.kinds.package.children import plan_package
from mpr_transcoder.pipeline import JobError, run_job
from tests.media import ffmpeg, make_video
from tests.media_checks import rgb_frame
from tests.moto_s3 import buckets_on
from tests.system.job_waits import wait_job

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def s3_settings(stack) -> S3Settings:
    # The session stack's S3 server (the last test needs the stack all the same).
    assert stack.moto
    return buckets_on(stack.moto.url, "wm-in", "wm-out")


W, H = 320, 180
LOGO = "brand/logo.png"  # 64x32 of pure red
NOT_AN_IMAGE = "brand/fake.png"
SOURCE = "wm/clip.mp4"
FLAT = "wm/flat.mp4"  # flat grey 854x480: a package's 480p and 360p rungs


@pytest.fixture(scope="module")
def media(s3_settings, tmp_path_factory) -> dict[str, MediaInfo]:
    d = tmp_path_factory.mktemp("wm")
    clip = make_video(d / "clip.mp4", seconds=2, size=f"{W}x{H}")
    flat = d / "flat.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=854x480:r=25:d=2", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(flat))  # fmt: skip
    logo = d / "logo.png"
    ffmpeg("-f", "lavfi", "-i", "color=red:s=64x32", "-frames:v", "1", str(logo))
    s3 = storage.get_s3_client(s3_settings)
    for path, key in ((clip, SOURCE), (flat, FLAT), (logo, LOGO)):
        s3.upload_file(str(path), s3_settings.bucket_in, key)
    s3.put_object(Bucket=s3_settings.bucket_in, Key=NOT_AN_IMAGE, Body=b"plain text, named like a PNG\n" * 10)
    return {k: asyncio.run(probe(str(p), protocols="file")) for k, p in ((SOURCE, clip), (FLAT, flat))}


async def run(s3_settings, tmp_path: Path, job: JobRequested) -> Path:
    """Run ``job`` and download its output folder; the local path of its main output."""
    s3 = storage.get_s3_client(s3_settings)
    out = await run_job(job, s3=s3, s3_settings=s3_settings, workdir=tmp_path / "work",
                        on_progress=lambda pct, rep: None)  # fmt: skip
    local = tmp_path / "out"
    for key in out.output_keys:
        dest = local / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(s3_settings.bucket_out, key, str(dest))
    return local / out.output_key


def frame(path: Path, at: float = 1.0) -> tuple[int, int, bytes]:
    """(width, height, rgb24 pixels) of the frame shown at ``at`` seconds (one FFmpeg run: a PPM)."""
    return rgb_frame(path, at=at)


def region_diff(a: bytes, b: bytes, w: int, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of two rgb24 frames over ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    total = n = 0
    for y in range(y0, y1):
        row = (y * w + x0) * 3, (y * w + x1) * 3
        total += sum(abs(p - q) for p, q in zip(a[row[0] : row[1]], b[row[0] : row[1]], strict=True))
        n += row[1] - row[0]
    return total / n


def redness(px: bytes, w: int, box: tuple[int, int, int, int]) -> float:
    """Mean of red minus green over ``box``."""
    x0, y0, x1, y1 = box
    vals = [px[(y * w + x) * 3] - px[(y * w + x) * 3 + 1] for y in range(y0, y1) for x in range(x0, x1)]
    return sum(vals) / len(vals)


def red_box(px: bytes, w: int, h: int) -> tuple[int, int, int, int]:
    """Bounding box of the clearly red pixels."""
    xs, ys = [], []
    for y in range(h):
        for x in range(w):
            r, g, b = px[(y * w + x) * 3 : (y * w + x) * 3 + 3]
            if r > 150 and g < 90 and b < 90:
                xs.append(x)
                ys.append(y)
    assert xs, "no red pixel"
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1


def transcode(job_id: str, **watermark) -> JobRequested:
    return JobRequested(job_id=job_id, kind="transcode", source_key=SOURCE, output_key=f"wm/{job_id}.mp4",
                        preset="h264-720p", watermark=watermark or None)  # fmt: skip


# The default width (0.15 of 320 = 48 px wide, 24 high), 16 px from the top-right corner.
TOP_RIGHT = (W - 16 - 48, 16, W - 16, 16 + 24)
TOP_LEFT = (16, 16, 16 + 48, 16 + 24)
BOTTOM_LEFT = (0, H // 2, W // 2, H)


@pytest.fixture(scope="module")
def plain(s3_settings, media, tmp_path_factory) -> bytes:
    """The frame at 1 s of the source transcoded without a watermark: what the marked ones differ from."""
    out = asyncio.run(run(s3_settings, tmp_path_factory.mktemp("plain"), transcode("wm-plain")))
    return frame(out)[2]


async def test_an_image_watermark_changes_its_corner_only_and_opacity_blends(s3_settings, plain, tmp_path):
    _, _, opaque = frame(
        await run(s3_settings, tmp_path / "b", transcode("wm-opaque", key=LOGO, opacity=1.0, margin=16))
    )
    _, _, faint = frame(
        await run(s3_settings, tmp_path / "c", transcode("wm-faint", key=LOGO, opacity=0.3, margin=16))
    )
    inner = (TOP_RIGHT[0] + 4, TOP_RIGHT[1] + 4, TOP_RIGHT[2] - 4, TOP_RIGHT[3] - 4)
    assert region_diff(plain, opaque, W, inner) > 40
    assert region_diff(plain, opaque, W, TOP_LEFT) < 4  # the opposite corner: as without it
    assert region_diff(plain, opaque, W, BOTTOM_LEFT) < 4
    # opaque: the logo's own red; faint: a blend, nearer the picture
    assert redness(opaque, W, inner) > 200
    assert 0 < region_diff(plain, faint, W, inner) < region_diff(plain, opaque, W, inner)
    assert redness(faint, W, inner) < redness(opaque, W, inner) - 80


async def test_a_text_watermark_renders_in_its_corner(s3_settings, plain, tmp_path):
    text = "© MPR 'quoted' [x],y;z %{pts} \\n"  # graph and drawtext specials: drawn as they are
    out = await run(
        s3_settings,
        tmp_path / "b",
        transcode("wm-text", text=text, position="bottom-left", size=0.1, opacity=1),
    )
    _, _, marked = frame(out)
    assert region_diff(plain, marked, W, (16, H - 16 - 20, W // 2, H - 16)) > 10
    assert region_diff(plain, marked, W, (W // 2 + 20, 0, W, H // 3)) < 4  # the opposite corner


async def test_every_rung_of_a_package_draws_the_image_scaled_to_it(s3_settings, media, tmp_path):
    package = normalize_job(
        JobRequested(
            job_id="wm-pkg",
            kind="package",
            source_key=FLAT,
            output_key="wm/pkg/master.m3u8",
            chunk_seconds=0,
            watermark={"key": LOGO, "opacity": 1.0, "width": 0.25, "margin": 10},
        )  # fmt: skip
    )
    plan = plan_package(package, media[FLAT])
    rungs = [c for c in plan.jobs if c.kind == "rendition" and c.rendition != "audio"]
    assert sorted(c.rendition or "" for c in rungs) == ["360p", "480p"]
    for child in rungs:
        assert child.watermark == package.watermark
        w, h, px = frame(await run(s3_settings, tmp_path / (child.rendition or ""), child), at=0.5)
        x0, y0, x1, y1 = red_box(px, w, h)
        # a quarter of the rung's width, 2:1 like the logo, 10 px from the top-right corner
        assert abs((x1 - x0) - w * 0.25) <= 3, (child.rendition, (x0, y0, x1, y1), w)
        assert abs((y1 - y0) - (x1 - x0) / 2) <= 3
        assert abs(y0 - 10) <= 2 and abs(w - x1 - 10) <= 2


async def test_a_missing_or_false_logo_fails_the_job_with_the_reason(s3_settings, media, tmp_path):
    with pytest.raises(JobError) as missing:
        await run(s3_settings, tmp_path / "a", transcode("wm-missing", key="brand/nothing.png"))
    assert missing.value.reason == "invalid" and "brand/nothing.png" in str(missing.value)
    assert "not in bucket" in str(missing.value)
    with pytest.raises(JobError) as fake:
        await run(s3_settings, tmp_path / "b", transcode("wm-fake", key=NOT_AN_IMAGE))
    assert fake.value.reason == "invalid" and "not a PNG or JPEG" in str(fake.value)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40
    ).filter(str.strip)
)
def test_ffmpeg_draws_any_text_from_a_file_whose_path_has_graph_specials(text, tmp_path):
    folder = tmp_path / "it's [a],b;c\\d"
    folder.mkdir(exist_ok=True)
    (folder / "t.txt").write_text(text, encoding="utf-8")
    spec = normalize_watermark({"text": text, "position": "center", "size": 0.3})
    graph = watermark_graph("null", WatermarkSource(spec, text_file=folder / "t.txt"))
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=black:s=64x36:d=0.04", "-filter_complex", graph,
         "-map", f"[{VIDEO_OUT}]", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert len(done.stdout) == 64 * 36


def test_a_package_submitted_to_the_stack_draws_the_watermark_on_its_rungs(api, s3, tmp_path):
    """Through the API, the bus and the transcoder that plans the package: its rendition children draw
    the package's watermark; a missing logo fails the package with the reason."""
    flat, logo = tmp_path / "flat.mp4", tmp_path / "logo.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=640x360:r=25:d=2", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(flat))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "color=red:s=64x32", "-frames:v", "1", str(logo))
    s3.upload_file(str(flat), "mpr-media-in", "wm-stack/flat.mp4")
    s3.upload_file(str(logo), "mpr-media-in", "wm-stack/logo.png")
    wm = {"key": "wm-stack/logo.png", "opacity": 1, "width": 0.25, "margin": 10, "position": "top-left"}
    r = api.post("/api/jobs", json={"kind": "package", "source_key": "wm-stack/flat.mp4", "watermark": wm})
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"])["job"]
    assert job["status"] == "completed", job
    folder = job["output_key"].rpartition("/")[0]
    listed = s3.list_objects_v2(Bucket="mpr-media-out", Prefix=f"{folder}/")["Contents"]
    for obj in listed:
        dest = tmp_path / "out" / obj["Key"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("mpr-media-out", obj["Key"], str(dest))
    w, h, px = frame(tmp_path / "out" / folder / "360p.m3u8", at=0.5)
    x0, y0, x1, y1 = red_box(px, w, h)
    assert abs((x1 - x0) - w * 0.25) <= 3 and abs(x0 - 10) <= 2 and abs(y0 - 10) <= 2, (x0, y0, x1, y1)

    missing = {**wm, "key": "wm-stack/none.png"}
    r = api.post(
        "/api/jobs", json={"kind": "package", "source_key": "wm-stack/flat.mp4", "watermark": missing}
    )
    failed = wait_job(api, r.json()["job"]["id"])["job"]
    assert failed["status"] == "failed" and "wm-stack/none.png" in (failed["error"] or ""), failed
