"""(h) Per-title ladders against the fixed one, FFmpeg alone (no stack): a low-complexity source (slides:
flat colour, a grid, a box that moves every 6 s) and a high-complexity one (a fractal zoom: lavfi's
``mandelbrot``, fine detail that moves everywhere in every frame, which the fixed ladder's rate caps
hold below 40 dB), each packaged by its rendition commands (the same argv as the rendition children, through
the transcoder's step runner) with ``abr-h264``'s fixed ladder and with the per-title ladder its analysis
(``mpr_transcoder.kinds.package.analysis``) chooses for ``{"psnr": 40}``. Per source: the video bytes of
each way, each rung's PSNR (x264's, mean over frames), and what the analysis cost against the fixed
package (wall and FFmpeg CPU seconds)."""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

import msgspec

from mpr_common.events import JobRequested, LadderChoice, QualityTarget
from mpr_common.mediainfo import probe
from mpr_common.presets import PRESETS, Rung
from mpr_transcoder.ffmpeg.argv import local_input
from mpr_transcoder.kinds.ladder import ladder_rungs
from mpr_transcoder.kinds.package.analysis import Analyser
from mpr_transcoder.kinds.rendition.cmaf import rendition_args
from mpr_transcoder.limits import Limits
from mpr_transcoder.quality import encode_measured
from mpr_transcoder.steps import StepRunner

from .common import ffmpeg

LADDER = "abr-h264"
TARGET = 40.0


def sources(work: Path, seconds: int, size: str, fps: int) -> dict[str, Path]:
    w, h = (int(v) for v in size.split("x"))
    slides = (
        f"color=c=0x203050:size={size}:rate={fps}:duration={seconds},"
        f"drawgrid=w={w // 8}:h={h // 6}:color=white@0.4,"
        f"drawbox=x='mod(floor(t/6)*{w // 5},{w - w // 4})':y={h // 3}:w={w // 4}:h={h // 5}:color=orange:t=fill"
    )
    # Rendered straight into the H.264 source like the slides: about 37 s of CPU at 30 s of 720p, a small
    # part of this section. Not noise: no encoder gains on pure noise at any affordable rate (testsrc2
    # under temporal noise: +0.21 dB at 2.72x the bytes, docs/benchmarks.md): it shows the encoder, not
    # the planner.
    fractal = f"mandelbrot=size={size}:rate={fps},trim=duration={seconds}"
    out = {}
    for name, graph in (("low", slides), ("high", fractal)):
        path = work / f"per-title-{name}.mp4"
        ffmpeg(
            *("-f", "lavfi", "-i", graph, "-c:v", "libx264", "-preset", "veryfast", "-crf", "16"),
            *("-pix_fmt", "yuv420p", "-g", str(2 * fps), str(path)),
        )
        out[name] = path
    return out


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


async def _package(src: Path, out: Path, rungs: list[Rung]) -> dict:
    """Every rung's rendition command: bytes of its segments, its PSNR, wall and CPU seconds."""
    preset = PRESETS[LADDER]
    info = await probe(str(src), protocols="file")
    runner = StepRunner(Limits(), asyncio.Event(), {}, lambda *a: None, info.duration)
    wall, cpu = time.perf_counter(), _children_cpu()
    by_rung = {}
    for rung in rungs:
        folder = out / rung.name
        folder.mkdir(parents=True, exist_ok=True)
        q = await encode_measured(runner, rendition_args(local_input(src), preset, rung, info, folder), out)
        size = sum(f.stat().st_size for f in folder.iterdir() if f.suffix in (".m4s", ".mp4"))
        by_rung[rung.name] = {"bytes": size, "psnr": q.psnr.mean if q and q.psnr else None, "crf": rung.crf}
    return {"rungs": by_rung, "wall": time.perf_counter() - wall, "cpu": _children_cpu() - cpu}


async def _analyse(src: Path, work: Path) -> tuple[LadderChoice, float, float]:
    preset = PRESETS[LADDER]
    info = await probe(str(src), protocols="file")
    job = JobRequested(
        job_id="bench",
        kind="package",
        source_key=src.name,
        ladder="per-title",
        quality_target=QualityTarget(psnr=TARGET),
    )
    wall, cpu = time.perf_counter(), _children_cpu()
    ladder = await Analyser(work, Limits(), protocols="file")(
        job, info, str(src), preset, ladder_rungs(preset, info)
    )
    return ladder, time.perf_counter() - wall, _children_cpu() - cpu


def _chosen(ladder: LadderChoice, fixed: tuple[Rung, ...]) -> list[Rung]:
    by_name = {r.name: r for r in fixed}
    return [
        msgspec.structs.replace(by_name[c.name], crf=c.crf, max_rate=c.max_rate, buf_size=c.buf_size)
        for c in ladder.rungs
        if c.kept and c.crf is not None and c.max_rate and c.buf_size
    ]


def per_title(work: Path, seconds: int, size: str, fps: int, log) -> dict:
    res: dict = {"source": f"{seconds} s {size} {fps} fps", "target": TARGET}
    for name, src in sources(work, seconds, size, fps).items():
        info = asyncio.run(probe(str(src), protocols="file"))
        fixed_rungs = ladder_rungs(PRESETS[LADDER], info)
        log(f"per-title ({name}): fixed ladder…")
        fixed = asyncio.run(_package(src, work / f"pt-{name}-fixed", list(fixed_rungs)))
        log(f"per-title ({name}): analysis…")
        ladder, a_wall, a_cpu = asyncio.run(_analyse(src, work))
        log(f"per-title ({name}): per-title ladder…")
        chosen = asyncio.run(_package(src, work / f"pt-{name}-chosen", _chosen(ladder, fixed_rungs)))
        f_bytes = sum(r["bytes"] for r in fixed["rungs"].values())
        c_bytes = sum(r["bytes"] for r in chosen["rungs"].values())
        top = fixed_rungs[0].name
        res[name] = {
            "fixed": fixed,
            "per_title": chosen,
            "ladder": msgspec.to_builtins(ladder),
            "bytes_ratio": c_bytes / f_bytes if f_bytes else None,
            "top": top,
            "analysis_wall": a_wall,
            "analysis_cpu": a_cpu,
            # the analysis against the package it plans (the per-title ladder's encodes plus itself)
            "analysis_share_cpu": a_cpu / (a_cpu + chosen["cpu"]) if chosen["cpu"] else None,
            "analysis_vs_fixed_cpu": a_cpu / fixed["cpu"] if fixed["cpu"] else None,
        }
    return res
