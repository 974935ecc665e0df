"""A per-title package's analysis of its source, run once by the transcoder that plans the package, before
any rendition (its result is kept in the package's plan: a redelivered package does not analyse again).
What is decided with the measurements: :mod:`mpr_common.per_title`.

1. **Scenes.** The source's scene changes as every job on it reads them (:mod:`...scene_store`: detected
   once per object version by one pass of FFmpeg's ``scdet``, :mod:`...ffmpeg.scdet`), also kept with
   the analysis (``LadderChoice.scenes``).
2. **Samples.** :data:`~mpr_common.per_title.SAMPLES` samples of
   :data:`~mpr_common.per_title.SAMPLE_SECONDS` at the scene changes nearest evenly spread moments,
   else evenly spread; each read by input seeking (HTTP range requests), not by reading the source.
3. **Probes.** For each rung, one FFmpeg command decodes the samples once, scales them as the rung's
   rendition does (its very filter) and encodes them at each of
   :data:`~mpr_common.per_title.PROBE_CRFS` with the rung's own x264 options (GOP, preset) and x264's
   PSNR and SSIM on (as :mod:`mpr_transcoder.quality`): one (rate, quality) point per CRF, the rate
   from the encoded bytes. Two encoders of one command log under their own address: each address's
   frames are one probe, and a probe's CRF is known from its quality's rank (a lower CRF never scores
   lower over the same frames).

Cost, measured on this machine (2 shared cores, FFmpeg 5.1, ``python -m bench --only per_title``, 30 s
720p sources, medians of 3): 5.1 s of FFmpeg CPU for a slide deck (its per-title package's encodes about
8 s, the fixed package 13.4 s) and 16.3 s for a mandelbrot zoom (encodes about 42 s, fixed package
36.3 s): 0.28-0.39 of the per-title package, above the 0.15 aimed at (docs/benchmarks.md). The probes' cost is the same
whatever the source's length (3 CRFs x 3 s per rung), so their share falls on longer sources."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import msgspec

from mpr_common.events import JobRequested, LadderChoice, MediaInfo, ProbePoint
from mpr_common.per_title import (
    PROBE_CRFS,
    SAMPLE_SECONDS,
    SAMPLES,
    RungPlan,
    choose_ladder,
    sample_starts,
    target_of,
)
from mpr_common.presets import Preset, Rung

from ...ffmpeg import ProgressReport, run_ffmpeg
from ...ffmpeg.argv import GLOBAL_ARGS, NETWORK_PROTOCOLS, fmt, source_input
from ...limits import Limits
from ...quality import STATS_PARAMS, parse_frame_line
from ...scene_store import SceneLookup, detect_scenes
from ...steps import StartFfmpeg, StepRunner
from ...workdir import lock
from ..rendition.cmaf import video_encoder_args, video_filter

UNCAPPED = "1000000k"  # the probes' VBV cap: none that binds (each probe is plain CRF)
_ADDRESS = re.compile(r"\[libx264 @ (0x[0-9a-fA-F]+)\]")


def probe_args(
    url: str,
    starts: list[float],
    seconds: float,
    preset: Preset,
    rung: Rung,
    info: MediaInfo,
    out: Path,
    protocols: str = NETWORK_PROTOCOLS,
) -> tuple[list[str], list[Path]]:
    """One rung's probes: the samples decoded once, concatenated, scaled as the rung's rendition, encoded
    at every probe CRF (raw H.264 files, one per CRF, in ``out``)."""
    inputs: list[str] = []
    for s in starts:
        inputs += source_input(url, fmt(s), stop=fmt(s + seconds), protocols=protocols)
    n = len(starts)
    joined = "".join(f"[{i}:v:0]" for i in range(n))
    pads = "".join(f"[p{i}]" for i in range(len(PROBE_CRFS)))
    graph = f"{joined}concat=n={n}:v=1:a=0,setpts=PTS-STARTPTS,{video_filter(rung, info)},split={len(PROBE_CRFS)}{pads}"
    args = [*GLOBAL_ARGS, *inputs, "-filter_complex", graph]
    files = []
    for i, crf in enumerate(PROBE_CRFS):
        probe = msgspec.structs.replace(rung, crf=crf, max_rate=UNCAPPED, buf_size=UNCAPPED)
        path = out / f"probe-{rung.name}-{crf}.h264"
        args += [
            *("-map", f"[p{i}]"),
            *video_encoder_args(preset, probe, info),
            *("-x264-params", STATS_PARAMS),
            *("-f", "h264", str(path)),
        ]
        files.append(path)
    return args, files


def read_probes(report: Path, files: list[Path], seconds: float, fps: float | None) -> list[ProbePoint]:
    """Each probe's point: its frames' mean PSNR and SSIM (one encoder's address each), ranked against
    the CRFs, and its rate from its file's bytes over its frames' time at ``fps`` (``seconds`` of
    samples when the rate is unknown)."""
    frames: dict[str, list[tuple[float | None, float | None]]] = defaultdict(list)
    with contextlib.suppress(FileNotFoundError), report.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if "[libx264" not in line or (a := _ADDRESS.search(line)) is None:
                continue
            f = parse_frame_line(line)
            if f is not None:
                frames[a[1]].append((f.psnr, f.ssim))
    groups = [g for g in frames.values() if g]
    if len(groups) != len(files):
        raise ValueError(f"{len(groups)} probe encoders logged frames, {len(files)} expected")
    if fps:
        seconds = max(len(g) for g in groups) / fps

    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return round(sum(kept) / len(kept), 4) if kept else None

    stats = sorted(
        ((mean([p for p, _ in g]), mean([s for _, s in g])) for g in groups),
        key=lambda t: (t[0] if t[0] is not None else 0.0, t[1] if t[1] is not None else 0.0),
        reverse=True,
    )
    points = []
    for crf, path, (psnr, ssim) in zip(PROBE_CRFS, files, stats, strict=True):
        size = path.stat().st_size if path.exists() else 0
        points.append(ProbePoint(crf=crf, kbps=round(size * 8 / 1000 / seconds, 1), psnr=psnr, ssim=ssim))
    return points


class Analyser:
    """Runs a per-title analysis under the transcoder's job limits, in a work dir of its own."""

    def __init__(
        self,
        workdir: str | Path,
        limits: Limits,
        start: StartFfmpeg = run_ffmpeg,
        protocols: str = NETWORK_PROTOCOLS,
    ) -> None:
        self.protocols = protocols  # "file": a local source (the benchmark)
        self.workdir = Path(workdir)
        self.limits = limits
        self.start = start

    async def __call__(
        self,
        package: JobRequested,
        info: MediaInfo,
        url: str,
        preset: Preset,
        rungs: tuple[Rung, ...],
        scenes: SceneLookup | None = None,
    ) -> LadderChoice:
        """The ladder chosen for ``package``; ``scenes``: where its source's scene changes are kept (else
        they are detected here, for this analysis alone)."""
        began = time.monotonic()
        metric, target = target_of(package.quality_target)
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"job-{package.job_id}-analysis-", dir=self.workdir))
        held = lock(tmp)
        step = StepRunner(self.limits, asyncio.Event(), {url: package.source_key}, _ignore, None, self.start)
        try:
            if scenes is not None:
                cuts = await scenes.detected(step)
            else:
                cuts = await detect_scenes(step, url, tmp, self.protocols)
            duration = info.duration or SAMPLE_SECONDS
            seconds = min(SAMPLE_SECONDS, duration)
            starts, spread = sample_starts(duration, cuts, SAMPLES, seconds)
            sampled = seconds * len(starts)
            probes: dict[str, list[ProbePoint]] = {}
            for rung in rungs:
                args, files = probe_args(url, starts, seconds, preset, rung, info, tmp, self.protocols)
                log = tmp / f"probe-{rung.name}.log"
                await step(args, report=log)
                probes[rung.name] = await asyncio.to_thread(read_probes, log, files, sampled, info.fps)
                for f in [log, *files]:
                    f.unlink(missing_ok=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(held)
        plans = [RungPlan(r.name, r.height, r.crf, r.max_rate) for r in rungs]
        return LadderChoice(
            metric=metric,
            target=target,
            samples=starts,
            sample_seconds=seconds,
            scenes=cuts,
            spread=spread,
            rungs=choose_ladder(plans, probes, metric, target),
            elapsed=round(time.monotonic() - began, 3),
        )


def _ignore(pct: float, rep: ProgressReport) -> None:
    pass
