"""Retrying ended jobs, one or all that match a filter, and a job's log of attempts.

A retry runs the job again under the same id as its next generation n (``JobRequested.retry``): the
job-state KV entry that kept its request from running again is replaced by a marker of generation n,
then the request the catalog recorded is published again with ``retry=n`` on its queue class's subject
(``Nats-Msg-Id: <job_id>.retry<n>``: two retries racing for the same generation run it once), then
``JobRetried`` says who asked. The catalog starts generation n on whichever of the two it sees first.

A package is retried whole: its transcoder plans it again from the plan it kept and publishes its
children of generation n; children that completed are reported again, not run (docs/reliability.md).
A child alone is never retried: only transcoders publish children."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.client import Client

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.catalog_requests import FindJobRequests, GetJobLog
from mpr_common.errors import Conflict, NotFound, Unavailable
from mpr_common.events import PRIORITIES, JobAttempt, JobRequested, JobRetried, JobView
from mpr_common.job_status import is_retryable
from mpr_common.jobstate import JobState

from ..catalog import ask_catalog
from ..http.settings import HttpSettings
from .schemas import AttemptOut, JobLog, RetriedJobs, RetryFilter, RetrySkipped

log = logging.getLogger("mpr.api")

RETRY_CONCURRENCY = 16  # retries of one bulk call in flight at once


def retry_msg_id(job_id: str, retry: int) -> str:
    return f"{job_id}.retry{retry}"


def retry_request(job: JobView, recorded: JobRequested) -> JobRequested:
    """The request that runs ``job`` again: the one recorded, as its next generation, in the queue class
    the job is in now (it may have moved). Raises :class:`Conflict` for a job that cannot be retried."""
    if job.parent_id is not None:
        raise Conflict(
            f"job {job.id} is a child of package {job.parent_id}: retry the package "
            f"(POST /api/jobs/{job.parent_id}/retry), which runs again the children that did not complete"
        )
    if not is_retryable(job.status):
        raise Conflict(f"job {job.id} is {job.status}: only a failed or cancelled job is retried")
    return msgspec.structs.replace(
        recorded,
        job_id=job.id,
        retry=job.retries + 1,
        priority=job.priority if job.priority in PRIORITIES else recorded.priority,
    )


def attempt_out(a: JobAttempt) -> AttemptOut:
    return AttemptOut(
        retry=a.retry,
        attempt=a.attempt,
        worker=a.worker,
        started_at=a.started_at,
        ended_at=a.ended_at,
        duration=round(max(0.0, a.ended_at - a.started_at), 3),
        outcome=a.outcome,
        reason=a.reason,
        error=a.error,
        log=a.log,
    )


class RetryService:
    def __init__(self, settings: HttpSettings, nc: Client, job_state: JobState) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.job_state = job_state

    async def retry(self, job_id: str, requested_by: str = "api") -> JobView:
        """Run a failed or cancelled job again; returns it queued in its new generation. 404 for an
        unknown job, 409 for one that is not failed or cancelled (or already being retried), 503 when
        the queue did not confirm the request (retrying the call is safe: the generation is the same)."""
        reply = await ask_catalog(self.nc, FindJobRequests(id=job_id, limit=1), self.settings.request_timeout)
        if not reply.jobs:
            raise NotFound(f"job {job_id} not found")
        return await self._retry(reply.jobs[0], reply.requests[0], requested_by)

    async def _retry(self, job: JobView, recorded: JobRequested, requested_by: str) -> JobView:
        req = retry_request(job, recorded)
        try:
            await self.job_state.retried(job.id, req.retry)
            ack = await publish_event(
                self.js,
                s.requested_subject(req.priority),
                req,
                msg_id=retry_msg_id(job.id, req.retry),
                attempts=3,
            )
        except Exception as exc:
            raise Unavailable(
                f"the job queue did not confirm retry {req.retry} of job {job.id} "
                f"({str(exc) or type(exc).__name__}): retry the call"
            ) from None
        if ack.duplicate:
            raise Conflict(f"retry {req.retry} of job {job.id} was already requested")
        try:  # the request carries its generation: this only tells who asked (events, webhooks)
            await publish_event(
                self.js,
                s.JOB_RETRIED,
                JobRetried(job_id=job.id, retry=req.retry, requested_by=requested_by),
                msg_id=f"retried-{job.id}-{req.retry}",
                attempts=3,
            )
        except Exception as exc:
            log.warning("JobRetried of %s not confirmed: %s", job.id, exc)
        return queued_again(job, req)

    async def retry_matching(self, f: RetryFilter, requested_by: str = "api") -> RetriedJobs:
        """Retry up to ``f.limit`` ended jobs that match ``f``, oldest first."""
        q = FindJobRequests(
            status=f.status, kind=f.kind, reason=f.reason, since=f.since, prefix=f.prefix, limit=f.limit
        )
        reply = await ask_catalog(self.nc, q, self.settings.request_timeout)
        more = reply.total > len(reply.jobs) or len(reply.jobs) >= f.limit
        if f.dry_run:
            ids = [j.id for j in reply.jobs]
            return RetriedJobs(retried=ids, matched=len(ids), more=more, dry_run=True)
        gate = asyncio.Semaphore(RETRY_CONCURRENCY)

        async def one(job: JobView, recorded: JobRequested) -> RetrySkipped | None:
            async with gate:
                try:
                    await self._retry(job, recorded, requested_by)
                except (Conflict, Unavailable) as exc:
                    return RetrySkipped(id=job.id, detail=exc.detail)
                return None

        skipped = await asyncio.gather(*(one(j, r) for j, r in zip(reply.jobs, reply.requests, strict=True)))
        return RetriedJobs(
            retried=[j.id for j, skip in zip(reply.jobs, skipped, strict=True) if skip is None],
            skipped=[skip for skip in skipped if skip is not None],
            matched=len(reply.jobs),
            more=more,
        )

    async def log(self, job_id: str) -> JobLog:
        """Every attempt at the job (all its generations), with its worker, duration, outcome, reason,
        error and FFmpeg's log; and the job's final error."""
        reply = await ask_catalog(self.nc, GetJobLog(id=job_id), self.settings.request_timeout)
        job = reply.job
        return JobLog(
            job_id=job.id,
            status=job.status,
            retries=job.retries,
            error=job.error,
            failure_reason=job.failure_reason,
            attempts=[attempt_out(a) for a in reply.attempts],
        )


def queued_again(job: JobView, req: JobRequested) -> JobView:
    """What JetStream has stored: the job queued in generation ``req.retry``, its last run forgotten."""
    return msgspec.structs.replace(
        job,
        status="queued",
        retries=req.retry,
        priority=req.priority,
        progress=0.0,
        error=None,
        failure_reason=None,
        speed=None,
        attempts=0,
        worker=None,
        started_at=None,
        finished_at=None,
        output_keys=[],
        output_size=None,
        loudness=None,
        playable_at=None,
        playable_key=None,
        playable_url=None,
    )
