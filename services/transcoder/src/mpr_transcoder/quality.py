"""Quality of every H.264 output, measured by its encoder in the encoding pass: luma PSNR and SSIM of each
frame against the very picture x264 was given (the source decoded, scaled to the output's size, its
watermark drawn), which is what an output should be compared with.

How: x264 computes both on its reconstruction, which is bit for bit what a decoder makes of the output,
when asked (``-x264-params psnr=1:ssim=1``), and with ``verbose=1`` logs one line per frame
(``frame= … Slice:P Poc:8 … PSNR Y:41.24 U:… SSIM Y:0.95403``) at FFmpeg's debug level. FFmpeg writes that
level to a report file (``FFREPORT``, see ``ffmpeg.runner.report_env``) while its stderr stays at
``error``; :func:`read_report` keeps those lines only. The output is the same bytes as without: the
metrics are computed beside the encode, never tuned for (no ``tune=psnr``).

Why not a second pass (``[out][ref]psnr``/``ssim`` filters, the source scaled by the same scaler): it
decodes the source again, which is most of a ladder rung's cost. Measured on this machine (2 shared
cores, FFmpeg 5.1, a 1080p 10 s testsrc2 + noise source, x264 veryfast, CRF 23, the rung's VBV cap):

==================  ========================  ============================
rung                encode, no metrics        encode with x264 psnr+ssim
==================  ========================  ============================
720p (CPU seconds)  18.9-19.2 (user)          18.7-19.2 (user): no cost seen
==================  ========================  ============================

while a second pass over the 1080p and 360p rungs took 16.4 s and 10.4 s of wall time against 16.2 s and
9.1 s for their encodes: about 2x. The whole ladder (``python -m bench --only quality``: the 4 rungs'
rendition commands, 3 alternating runs) used 76.9 s of FFmpeg CPU with metrics against 79.2 s without
(0.97x, within noise; the bar is 1.15x). Its costs are a debug-level log file in the job's work dir (about
200 bytes a frame plus the decoder's debug lines; parsed after the run, then deleted) and nothing else.

What is not measured, and so absent (None, never 0): outputs another encoder makes (HEVC rungs, VP9
transcodes: x265 and libvpx report no per-frame SSIM through FFmpeg 5.1), stream copies, audio,
thumbnails and previews, and the smart cut's re-encoded edges (a trim with a preset re-encodes through
x264 and is measured). VMAF needs a second pass with libvmaf, which Debian 12's FFmpeg lacks:
not measured.

PSNR: an identical frame is infinite; x264 writes 100 dB (:data:`mpr_common.quality.PSNR_CAP`), and so
does this module for any larger value it reads. Statistics: :mod:`mpr_common.quality`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mpr_common.events import Quality
from mpr_common.quality import PSNR_CAP, quality_of

from .steps import StepRunner

ENCODER = "libx264"
STATS_PARAMS = "psnr=1:ssim=1:verbose=1"
REPORT_NAME = "quality-{n}.log"
_CODEC_OPTIONS = ("-c:v", "-vcodec", "-codec:v")

_X264_LINE = re.compile(r"\[libx264 @ [^\]]*\] frame=\s*(\d+)\b")
_SLICE = re.compile(r"\bSlice:([A-Za-z])\b")
_POC = re.compile(r"\bPoc:(\d+)\b")
_PSNR = re.compile(r"\bPSNR Y:\s*([0-9]+(?:\.[0-9]+)?|inf)\b")
_SSIM = re.compile(r"\bSSIM Y:\s*(-?[0-9]+(?:\.[0-9]+)?)\b")
_OUTPUT_SIZE = re.compile(r"\bVideo: h264\b.*?, (\d{1,5})x(\d{1,5})\b")


@dataclass(frozen=True, slots=True)
class FrameScore:
    """One frame as x264 logged it: its coding order, picture order count (twice its display position
    since the last IDR frame), whether it is an IDR frame's slice type (I), luma PSNR and SSIM."""

    coded: int
    poc: int
    intra: bool
    psnr: float | None
    ssim: float | None


def parse_frame_line(line: str) -> FrameScore | None:
    """x264's per-frame line in FFmpeg's log, else None (any other line, or one cut short)."""
    m = _X264_LINE.search(line)
    if m is None:
        return None
    poc, kind = _POC.search(line), _SLICE.search(line)
    if poc is None or kind is None:
        return None
    psnr = _number(_PSNR.search(line))
    ssim = _number(_SSIM.search(line))
    if psnr is not None:
        psnr = min(psnr, PSNR_CAP)
    if ssim is not None and not -1.0 <= ssim <= 1.0:
        ssim = None
    if psnr is None and ssim is None:
        return None
    return FrameScore(int(m[1]), int(poc[1]), kind[1].upper() == "I", psnr, ssim)


def _number(m: re.Match[str] | None) -> float | None:
    if m is None:
        return None
    value = float(m[1])
    return None if math.isnan(value) else value


def display_order(frames: list[FrameScore]) -> list[FrameScore]:
    """Frames in the order they are shown: x264 logs them in coding order, and each IDR frame (an I
    frame at POC 0) starts counting again."""
    placed: list[tuple[int, int, FrameScore]] = []
    base = next_base = 0
    for f in frames:
        if f.poc == 0 and f.intra:
            base = next_base
        slot = base + f.poc // 2
        next_base = max(next_base, slot + 1)
        placed.append((slot, f.coded, f))
    return [f for _, _, f in sorted(placed, key=lambda p: (p[0], p[1]))]


@dataclass(frozen=True, slots=True)
class Report:
    frames: list[FrameScore]
    width: int | None = None
    height: int | None = None


def read_report(path: Path) -> Report:
    """The per-frame statistics in an FFmpeg report file, in display order, and the encoded picture's
    size (from the output stream's description); no frame when the file is missing."""
    frames: list[FrameScore] = []
    size: tuple[int, int] | None = None
    output = False  # past "Output #0": stream descriptions are the output's, not the source's
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if "[libx264" in line:
                f = parse_frame_line(line)
                if f is not None:
                    frames.append(f)
            elif line.startswith("Output #"):
                output = True
            elif output and size is None and "Video: h264" in line and (m := _OUTPUT_SIZE.search(line)):
                size = (int(m[1]), int(m[2]))
    w, h = size if size is not None else (None, None)
    return Report(display_order(frames), w, h)


def measurable(args: list[str]) -> bool:
    """Whether ``args`` has exactly one video encoder and it is x264: its encoder can measure it."""
    codecs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in _CODEC_OPTIONS]
    return codecs == [ENCODER]


def with_encoder_stats(args: list[str]) -> list[str]:
    """``args`` with x264's per-frame statistics on, added to its ``-x264-params`` when it has some
    (FFmpeg keeps only the last of an option given twice)."""
    out = list(args)
    if "-x264-params" in out:
        i = out.index("-x264-params") + 1
        out[i] = f"{out[i]}:{STATS_PARAMS}" if out[i] else STATS_PARAMS
        return out
    at = next(i for i, a in enumerate(out[:-1]) if a in _CODEC_OPTIONS and out[i + 1] == ENCODER)
    return [*out[: at + 2], "-x264-params", STATS_PARAMS, *out[at + 2 :]]


def quality_from(report: Report, *, keep_frames: bool = False) -> Quality | None:
    psnr = [f.psnr for f in report.frames if f.psnr is not None]
    ssim = [f.ssim for f in report.frames if f.ssim is not None]
    return quality_of(psnr, ssim, width=report.width, height=report.height, keep_frames=keep_frames)


async def encode_measured(
    step: StepRunner,
    args: list[str],
    work_dir: Path,
    *,
    keep_frames: bool = False,
    on_report: Callable[[Path], None] | None = None,
) -> Quality | None:
    """Run the encode ``args`` with ``step``; the quality of what it wrote when its encoder can measure it
    (None otherwise, or when it logged no frame). ``keep_frames``: with the per-frame values (a chunk's,
    which its parent merges). ``on_report``: also given the command's report (in a thread) before it
    goes (another output's log: the scenes its detector found)."""
    measured = measurable(args)
    if not measured and on_report is None:
        await step(args)
        return None
    n = 0
    while (work_dir / REPORT_NAME.format(n=n)).exists():
        n += 1
    report = work_dir / REPORT_NAME.format(n=n)
    try:
        await step(with_encoder_stats(args) if measured else args, report=report)
        if on_report is not None:
            await asyncio.to_thread(on_report, report)
        if not measured:
            return None
        read = await asyncio.to_thread(read_report, report)
    finally:
        report.unlink(missing_ok=True)
    return quality_from(read, keep_frames=keep_frames)
