"""The ``package`` kind: never run as one job. The worker plans it into child jobs (:mod:`.children`: a
``rendition`` per rung and the sound, a ``storyboard`` when asked for), publishes them, and its last child
to complete writes the manifests (:mod:`.manifests`) and completes it: the chord (:mod:`.chord`)."""

from __future__ import annotations

from mpr_common.events import JobRequested

from ...job_errors import JobError
from ..base import JobContext, Work

REFUSED = "a package runs as its child jobs, on the transcoders' queue"


def check(job: JobRequested) -> None:
    raise JobError(REFUSED, "invalid")


def plan(ctx: JobContext) -> Work:
    raise JobError(REFUSED, "invalid")
