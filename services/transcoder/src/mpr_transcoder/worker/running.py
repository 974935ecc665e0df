"""A job while it runs on this replica: its :class:`Running` record (cancel signal, progress, lease), and
the keeping of its lease: renewed, with in-progress acks and progress events, well inside both the lease
and ``ack_wait``; a run that loses its lease stops FFmpeg and reports nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nats.aio.msg import Msg

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.events import JobProgress, JobRequested
from mpr_common.jobstate import JobLease

from ..ffmpeg import ProgressReport

if TYPE_CHECKING:
    from .lifecycle import Worker

log = logging.getLogger("mpr.transcoder")


@dataclass
class Running:
    job_id: str
    parent_id: str | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    progress: float = 0.0
    report: ProgressReport = field(default_factory=ProgressReport)
    lease: JobLease | None = None
    # Why this run must neither report nor ack the job: its lease was taken over, ran out, or the job
    # ended otherwise (failed, retried) while it ran. FFmpeg is stopped at once.
    lost: str | None = None


def lease_cadence(ack_wait: float, lease_seconds: float) -> tuple[float, float]:
    """How often a run renews its lease and acks progress (well inside both ack_wait and the lease),
    and how often a waiting delivery looks at another run's lease."""
    every = max(0.5, min(ack_wait, lease_seconds) / 3)
    return every, max(0.2, min(every, lease_seconds / 10))


async def renew(running: Running) -> bool:
    """Renew the run's lease; False when the run has lost its job (FFmpeg is being stopped)."""
    lease = running.lease
    if lease is None:
        return True
    try:
        renewal = await lease.renew()
    except Exception as exc:  # the bucket unreadable after a conflict: the lease's clock decides
        log.info("lease renewal unsure: %s", exc, extra={"job_id": running.job_id})
        renewal = "unsure"
    if renewal == "lost":
        holder = lease.found.lease.worker if lease.found.lease else "a newer generation"
        lose(running, f"its lease was taken over by {holder}")
        return False
    if renewal == "ended":
        if lease.found.state == "cancelled":  # cancelled by request: ends as a cancel does
            running.cancel.set()
            return True
        lose(running, f"the job ended meanwhile ({lease.found.state})")
        return False
    return True


def lose(running: Running, why: str) -> None:
    if running.lost is None:
        running.lost = why
        log.warning("lost the job: %s; stopping FFmpeg", why, extra={"job_id": running.job_id})
    running.cancel.set()


async def keep_lease(worker: Worker, msg: Msg, job: JobRequested, running: Running, attempt: int) -> None:
    """Progress at least every 2 s; the lease renewed and in-progress acks sent well inside both
    the lease and ack_wait. A run that loses its lease stops FFmpeg and stops acking at once."""
    settings = worker.settings
    interval = min(settings.progress_interval, 2.0)
    heartbeat_every, _ = lease_cadence(worker.ack_wait, settings.lease_seconds)
    last_beat = time.monotonic()  # the lease was taken just now
    while True:
        # Checked before anything is awaited: a run frozen past its deadline stops before its
        # FFmpeg's end can lead to an upload.
        if running.lease is not None and running.lease.expired():
            lose(running, "its lease ran out unrenewed")
            return
        now = time.monotonic()
        if now - last_beat >= heartbeat_every:
            last_beat = now
            if not await renew(running):
                return
            with contextlib.suppress(Exception):
                await msg.in_progress()
        with contextlib.suppress(Exception):
            await publish_event(
                worker.js,
                s.JOB_PROGRESS,
                JobProgress(
                    job_id=job.job_id,
                    progress=round(running.progress, 2),
                    speed=running.report.speed,
                    out_time=running.report.out_time,
                    worker=settings.instance,
                    attempt=attempt,
                    retry=job.retry,
                ),
                timeout=2.0,
            )
        await asyncio.sleep(interval)
