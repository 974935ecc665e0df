"""Quality statistics of a video output, defined once: what a transcoder computes from per-frame values,
and how a rendition or transcode encoded in chunks gets the statistics of its frames from its chunks'.

The 5th percentile is the nearest rank (the ``ceil(0.05 * n)``-th lowest value), so it is always one of
the frames' values and the statistics of the concatenated chunks are exactly those of their frames taken
together (:func:`merge`): each chunk's completion carries its per-frame values, rounded as the encoder
prints them (PSNR to 0.01 dB, SSIM to 1e-5), and a stitched output's statistics are computed from all of
them at once."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from .events import JobCompleted, MetricStats, Quality

# An identical frame has an infinite PSNR: x264 counts it as this many dB, and so does every mean here.
PSNR_CAP = 100.0
PERCENTILE = 0.05


def metric_stats(values: Sequence[float]) -> MetricStats | None:
    """Mean, minimum and nearest-rank 5th percentile of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(PERCENTILE * len(ordered) - 1e-9))
    return MetricStats(mean=round(math.fsum(ordered) / len(ordered), 6), min=ordered[0], p5=ordered[rank - 1])


def quality_of(
    psnr: Sequence[float],
    ssim: Sequence[float],
    *,
    width: int | None = None,
    height: int | None = None,
    keep_frames: bool = False,
) -> Quality | None:
    """The quality of an output from its frames' luma PSNR and SSIM (either may be empty: not measured);
    None when nothing was measured. ``keep_frames``: carry the per-frame values (a chunk's)."""
    frames = max(len(psnr), len(ssim))
    if frames == 0:
        return None
    return Quality(
        frames=frames,
        width=width,
        height=height,
        psnr=metric_stats(psnr),
        ssim=metric_stats(ssim),
        frame_psnr=list(psnr) if keep_frames else [],
        frame_ssim=list(ssim) if keep_frames else [],
    )


def without_frames(quality: Quality | None) -> Quality | None:
    """A quality as a job row, a webhook or a chunk's own job shows it: the statistics without the
    per-frame values only a chunk's parent needs."""
    if quality is None or not (quality.frame_psnr or quality.frame_ssim):
        return quality
    return msgspec.structs.replace(quality, frame_psnr=[], frame_ssim=[])


def shown(completed: JobCompleted) -> JobCompleted:
    """A completion as receivers see it (webhooks): its qualities without per-frame values."""
    rendition = completed.rendition
    if rendition is not None and rendition.quality is not None:
        rendition = msgspec.structs.replace(rendition, quality=without_frames(rendition.quality))
    return msgspec.structs.replace(completed, quality=without_frames(completed.quality), rendition=rendition)


def merge(parts: Sequence[Quality | None]) -> Quality | None:
    """The quality of an output made of ``parts`` (its chunks', in order, each with its per-frame values):
    the statistics of all their frames. None when a part was not measured: a statistic over some of the
    frames would claim more than was measured."""
    measured = [p for p in parts if p is not None]
    if not measured or len(measured) < len(parts):
        return None
    first = measured[0]
    # a metric some part lacks per-frame values of is left out (absent, not a partial statistic)
    psnr = [v for p in measured for v in p.frame_psnr] if all(p.frame_psnr for p in measured) else []
    ssim = [v for p in measured for v in p.frame_ssim] if all(p.frame_ssim for p in measured) else []
    merged = quality_of(psnr, ssim, width=first.width, height=first.height)
    return None if merged is None else msgspec.structs.replace(merged, method=first.method)
