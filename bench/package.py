"""(f) A package: a 1080p source → a 4-rendition ladder + audio on 2 transcoders, vs ONE raw FFmpeg command
that encodes the same ladder (same encoder settings, split + scale) from a local file; the same with the
AV1 + H.264 ladder (``abr-av1``: 3 AV1 and 2 H.264 renditions + audio)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from mpr_common.mediainfo import probe
from mpr_common.presets import PRESETS
from mpr_devstack.stack import Stack
from mpr_transcoder.kinds.rendition.cmaf import ladder_command

from .ceilings import _run_ffmpeg
from .common import Rate, api_client, job_of, make_source, run_job, s3_client
from .mpr import register

LADDER = "abr-h264"
AV1_LADDER = "abr-av1"
RUNGS = {LADDER: "1080p/720p/480p/360p + AAC", AV1_LADDER: "AV1 1080p/720p/360p, H.264 720p/360p + AAC"}


def raw_ladder(src: Path, out_dir: Path, ladder: str = LADDER) -> float:
    info = asyncio.run(probe(str(src), protocols="file"))
    out_dir.mkdir(parents=True, exist_ok=True)
    return _run_ffmpeg(ladder_command(src, PRESETS[ladder], info, out_dir))


def package(st: Stack, work: Path, seconds: int, runs: int, fps: int = 25, ladder: str = LADDER) -> dict:
    src = make_source(work / "pkg.mp4", seconds, "1920x1080", "8M", fps)
    s3_client(st).upload_file(str(src), st.bucket_in, "bench/pkg.mp4")
    raw = [raw_ladder(src, work / f"raw-ladder-{ladder}-{i}", ladder) for i in range(runs)]
    api = api_client(st.api_url)
    register(api, "bench/pkg.mp4")
    times, children = [], 0
    for _ in range(runs):
        body = {
            "kind": "package",
            "source_key": "bench/pkg.mp4",
            "preset": ladder,
            "job_id": f"pkg-{uuid.uuid4().hex[:12]}",
        }
        times.append(run_job(api, body))
        children = len(job_of(api.get(f"/api/jobs/{body['job_id']}").json())["children"])
    return {
        "source": f"{seconds} s 1920x1080 {fps} fps H.264 8 Mb/s → {ladder} ({RUNGS[ladder]})",
        "children": children,
        "mpr": Rate(runs, sum(times), times, "packages"),
        "raw": Rate(runs, sum(raw), raw, "commands"),
    }
