"""Job kinds as a registry: each kind of ``mpr_common.events.JOB_KINDS`` maps to the module that plans it
(``plan(ctx) -> Work``: the FFmpeg steps that run it, what they leave, how progress is counted).

- ``audio``, ``thumbnail``, ``hls``: one FFmpeg command (:mod:`.single_output`);
- ``transcode``: the same, or a part (a video chunk, the sound) of a chunked transcode, whose job graph
  the worker runs (:mod:`.transcode`);
- ``trim``: frame-accurate smart cut, or a stream copy on key frames (:mod:`.trim`);
- ``storyboard``: sprite sheets, WebVTT track and poster (:mod:`.storyboard`);
- ``preview``: an animated WebP or GIF of clips from evenly spread moments, or from scenes when they
  are known (:mod:`.preview`);
- ``rendition``: one CMAF rendition of a package (:mod:`.rendition`);
- ``package``: never run as one job: planned into child jobs and completed by its last child, the chord
  (:mod:`.package`), which the worker runs.

A kind module may also define ``check(job)``: what refuses the job before its source is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from mpr_common.events import JobRequested

from . import package, preview, rendition, single_output, storyboard, transcode, trim
from .base import JobContext, Work


class Kind(Protocol):
    def plan(self, ctx: JobContext) -> Work: ...


KINDS: Mapping[str, Kind] = {
    "transcode": transcode,
    "audio": single_output,
    "thumbnail": single_output,
    "hls": single_output,
    "trim": trim,
    "storyboard": storyboard,
    "rendition": rendition,
    "package": package,
    "preview": preview,
}


def check(job: JobRequested) -> None:
    """Refuse (``JobError``) a job its kind never runs as one job, before its source is read."""
    refuse = getattr(KINDS[job.kind], "check", None)
    if refuse is not None:
        refuse(job)


def plan_work(ctx: JobContext) -> Work:
    """How ``ctx.job`` (normalised) runs: its kind's plan, in ``ctx.out_dir``."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    return KINDS[ctx.job.kind].plan(ctx)


__all__ = ["KINDS", "JobContext", "Kind", "Work", "check", "plan_work"]
