"""(g) The cost of measuring quality: every video rung of a package (``abr-h264`` over a 1080p test
pattern with noise, hard to encode and to decode) encoded by its rendition command as the rendition's
child job runs it (the same argv, through the transcoder's step runner), once as it is and once with x264's
per-frame PSNR/SSIM, its debug report file and the parsing of it (``mpr_transcoder.quality``). Runs
alternate, so both see the same machine; the figures are medians of the rungs' summed wall times, with
the CPU seconds FFmpeg used (less sensitive to what else runs on the cores)."""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from pathlib import Path

from mpr_common.mediainfo import probe
from mpr_common.presets import PRESETS
from mpr_transcoder.ffmpeg.argv import local_input
from mpr_transcoder.kinds.ladder import ladder_rungs
from mpr_transcoder.kinds.rendition.cmaf import rendition_args
from mpr_transcoder.limits import Limits
from mpr_transcoder.quality import encode_measured
from mpr_transcoder.steps import StepRunner

from .common import ffmpeg

LADDER = "abr-h264"


def noisy_source(path: Path, seconds: int, size: str, fps: int) -> Path:
    """testsrc2 with temporal noise, H.264 at CRF 18: a source whose decoding costs what a real one's does."""
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"),
        *("-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18"),
        *("-pix_fmt", "yuv420p", "-g", str(2 * fps), str(path)),
    )
    return path


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


async def _ladder(src: Path, out: Path, measured: bool) -> tuple[float, float, list]:
    """(wall seconds, FFmpeg CPU seconds, qualities) of every rung's command, one after the other."""
    preset = PRESETS[LADDER]
    info = await probe(str(src), protocols="file")
    runner = StepRunner(Limits(), asyncio.Event(), {}, lambda *a: None, info.duration)
    qualities = []
    wall, cpu = time.perf_counter(), _children_cpu()
    for rung in ladder_rungs(preset, info):
        folder = out / rung.name
        folder.mkdir(parents=True, exist_ok=True)
        args = rendition_args(local_input(src), preset, rung, info, folder)
        if measured:
            qualities.append(await encode_measured(runner, args, out))
        else:
            await runner(args)
    return time.perf_counter() - wall, _children_cpu() - cpu, qualities


def metrics_cost(work: Path, seconds: int, size: str, fps: int, runs: int, log) -> dict:
    src = noisy_source(work / "quality-src.mp4", seconds, size, fps)
    plain: list[tuple[float, float]] = []
    measured: list[tuple[float, float]] = []
    qualities: list = []
    for i in range(runs):
        log(f"quality cost: run {i + 1} of {runs}, without then with metrics…")
        wall, cpu, _ = asyncio.run(_ladder(src, work / f"q-plain-{i}", measured=False))
        plain.append((wall, cpu))
        wall, cpu, qualities = asyncio.run(_ladder(src, work / f"q-measured-{i}", measured=True))
        measured.append((wall, cpu))
    return {
        "source": f"{seconds} s {size} {fps} fps testsrc2 + noise, H.264 CRF 18 → {LADDER}",
        "rungs": len(qualities),
        "plain_wall": statistics.median(w for w, _ in plain),
        "plain_cpu": statistics.median(c for _, c in plain),
        "measured_wall": statistics.median(w for w, _ in measured),
        "measured_cpu": statistics.median(c for _, c in measured),
        "psnr": [round(q.psnr.mean, 2) for q in qualities if q is not None and q.psnr is not None],
        "runs": runs,
    }
