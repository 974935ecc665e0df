"""One delivery of a job request, from the message to its ack: the per-message state machine.

A delivery is decoded and checked (a child only from a package's own subject), skipped when its job has
ended (its outcome reported again), admitted (its request, package, output and queue copy checked; a
package is fanned out here), run under the job's lease once this run holds it (another run's live lease:
kept in progress, looked at again), and ended from that lease: completed, retried with a NAK and backoff,
failed (dead-lettered after ``MaxDeliver``), or handed back on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import msgspec
from nats.aio.msg import Msg

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, dead_letter, publish_event
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.content_keys import KEY_SECRET_ENV, KeyUnreadable, PackageKey
from mpr_common.events import PRIORITIES, AttemptOutcome, JobAttempt, JobCompleted, JobFailed, JobRequested
from mpr_common.job_status import failed_status
from mpr_common.jobs import (
    CHILD_ONLY,
    JobRequestError,
    is_graph_child,
    job_identity,
    normalize_job,
    outcome_id,
)
from mpr_common.jobstate import UNAVAILABLE, JobLease, QueuePlace, move_number
from mpr_common.tracing import span_from

from ..ffmpeg import ProgressReport
from ..job_errors import JobError
from ..kinds.graph.runner import JobGraph
from ..metrics import FFMPEG_SPEED, JOB_SECONDS, JOBS_FINISHED, JOBS_IN_FLIGHT
from ..pipeline import Outcome, read_source, run_job
from .pulling import wait_for
from .running import Running, keep_lease, lease_cadence

if TYPE_CHECKING:
    from .lifecycle import Worker

log = logging.getLogger("mpr.transcoder")

# A package's children of every class: a child is run only when it comes from one of these.
CHILD_SUBJECTS = frozenset(s.child_subject(p) for p in PRIORITIES)


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff for the NAK after a transient failure (attempt counts from 1)."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


class Attempt:
    """One delivery ``msg`` of a job request from queue class ``cls``, handled by ``worker`` (its
    settings, state buckets, job graphs and running jobs)."""

    def __init__(self, worker: Worker, msg: Msg, cls: str) -> None:
        self.w = worker
        self.msg = msg
        self.cls = cls
        self.attempt = msg.metadata.num_delivered

    async def handle(self) -> None:
        try:
            job = job_identity(
                decode(self.msg.data, JobRequested),
                (self.msg.headers or {}).get(MSG_ID),
                self.msg.metadata.sequence.stream,
            )
        except (DecodeError, ValidationError) as exc:
            await self._dead_letter(f"undecodable job request: {exc}", None)
            await self.msg.term()
            return
        if (job.parent_id is not None) != (
            self.msg.subject in CHILD_SUBJECTS
        ):  # no state written for a look-alike
            await self._dead_letter(CHILD_ONLY, job.job_id)
            await self.msg.term()
            return
        try:
            with span_from("mpr.transcode", self.msg.headers, job_id=job.job_id, job_kind=job.kind):
                await self._process(job)
        except Exception:
            # NATS or the KV store failed while reporting: leave it for redelivery.
            log.exception("job bookkeeping failed", extra={"job_id": job.job_id})
            with contextlib.suppress(Exception):
                await self.msg.nak(
                    delay=retry_delay(self.attempt, self.w.settings.retry_base, self.w.settings.retry_max)
                )

    async def _process(self, job: JobRequested) -> None:
        assert self.w.job_state is not None
        if await self._ended(job):
            return
        checked = await self._admit(job)
        if checked is None:
            return
        job = checked
        try:
            normalize_job(job)
        except JobRequestError:  # an invalid id is no KV key: run_job fails the job with the reason
            await self._run(job, None)
            return
        lease = JobLease(
            self.w.job_state,
            job.job_id,
            worker=self.w.settings.instance,
            retry=job.retry,
            seconds=self.w.settings.lease_seconds,
        )
        while True:
            verdict = await self._acquire(job, lease)
            if verdict == "taken":
                break
            if verdict is None:  # stopping while another run holds it: that run keeps the message
                return
            if await self._ended(job):  # it ended (or was retried) while we looked
                return
        await self._run(job, lease)

    async def _ended(self, job: JobRequested) -> bool:
        """A delivery of a job that has ended (or was retried since) is acked, its outcome reported
        again (de-duplicated); True when this delivery is done with."""
        assert self.w.job_state is not None
        state = await self.w.job_state.get(job.job_id, job.retry)
        if state == "superseded":  # retried since, as a newer generation: that request runs, not this one
            log.info("request of an older generation (%d) skipped", job.retry, extra={"job_id": job.job_id})
            await self.msg.ack_sync()
            return True
        if isinstance(state, JobCompleted):
            # Done by an earlier delivery that died before its ack: report again (deduplicated) and ack.
            await publish_event(
                self.w.js,
                s.JOB_COMPLETED,
                msgspec.structs.replace(state, retry=job.retry),
                msg_id=outcome_id("completed", job.job_id, job.retry),
            )
            graph = self.w.graphs.of_child(job)
            if graph is not None:  # it may have died before its parent's fan-in
                await graph.child_completed(job)
            await self.msg.ack_sync()
            return True
        if state == "cancelled":
            await self._fail(job, JobError("cancelled by request", "cancelled"))
            await self.msg.ack_sync()
            return True
        if state == "failed":  # ended for good earlier (a replayed or re-created consumer): never rerun
            log.info("job already failed; not run again", extra={"job_id": job.job_id})
            await self.msg.ack_sync()
            return True
        return False

    async def _admit(self, job: JobRequested) -> JobRequested | None:
        """The checks of a job that has not ended, before it may run: its request (again: it may not
        have come through the API), its package, its output and its queue copy; a package is fanned
        out here. The job to run, or None when this delivery is done with."""
        assert self.w.job_state is not None
        try:  # jobs published straight onto NATS skipped the API's checks: re-check here
            self.w.policy.check(job)
            if is_graph_child(job):
                graph = self.w.graphs.of_child(job)
                if graph is None:
                    raise JobRequestError(f"no job graph of {job.kind} children runs here")
                verdict = await graph.verdict(job)
                job = verdict.job
                if verdict.ended is not None:  # its parent failed or was cancelled: never start
                    await self.w.job_state.cancelled(job.job_id)
                    ended = JobError(f"cancelled: {graph.noun} {job.parent_id} {verdict.ended}", "cancelled")
                    await self._fail(job, ended)
                    await self.msg.ack_sync()
                    return None
            await self._claim_output(job)
        except JobRequestError as exc:
            await self._fail(job, JobError(str(exc), "invalid"))
            await self.msg.ack_sync()
            return None
        if job.parent_id is None and not await self._claim_start(job):
            # Moved to another class (POST /api/jobs/{id}/move): the copy there runs, not this one.
            log.info(
                "job moved to another queue class; this copy from %s is skipped",
                self.cls,
                extra={"job_id": job.job_id},
            )
            await self.msg.ack_sync()
            JOBS_FINISHED.labels(job.kind, "moved").inc()
            return None
        parent_of = self.w.graphs.of_parent(job.kind) if job.parent_id is None else None
        if parent_of is not None and parent_of.may_fan_out(job):  # its children queue in its class
            if await self._fan_out(parent_of, msgspec.structs.replace(job, priority=self.cls)):
                return None
        if job.job_id in self.w.running:  # the same job redelivered to this replica while it runs
            await self.msg.in_progress()
            return None
        return job

    async def _acquire(self, job: JobRequested, lease: JobLease) -> str | None:
        """Take the job's lease. While another run holds it live, this delivery is not started: it is
        kept in progress (no NAK: that would spend a delivery of MaxDeliver while the job runs) and the
        lease is looked at again, until the job ends (``ended``/``superseded``: the caller reads it),
        or the lease is left unrenewed for its whole duration (the holder died or was cut off: taken
        over, ``taken``). None once we stop: the holder's (or the next) delivery carries on."""
        beat_every, look_every = lease_cadence(self.w.ack_wait, self.w.settings.lease_seconds)
        last_beat = time.monotonic()
        told = False
        while True:
            try:
                verdict = await lease.acquire()
            except UNAVAILABLE as exc:  # the bucket's election: keep the delivery and look again
                log.info("job state unreadable (%s); looking again", type(exc).__name__)
                verdict = "held"
            if verdict != "held":
                if told:
                    log.info("lease of the job %s", verdict, extra={"job_id": job.job_id})
                return verdict
            if not told:
                holder = lease.holder.worker if lease.holder else "another run"
                log.info(
                    "job runs on %s under a live lease: this delivery is not started",
                    holder,
                    extra={"job_id": job.job_id},
                )
                told = True
            if time.monotonic() - last_beat >= beat_every:
                with contextlib.suppress(Exception):
                    await self.msg.in_progress()
                last_beat = time.monotonic()
            await wait_for(self.w.stopping, asyncio.Event(), look_every)
            if self.w.stopping.is_set():
                return None

    async def _content_key(self, job: JobRequested) -> PackageKey | None:
        """The key an encrypted package's rendition encrypts with (made when the package was planned)."""
        if job.encryption is None or job.kind != "rendition" or job.parent_id is None:
            return None
        keys = self.w.content_keys
        if keys is None:
            raise JobError(f"{KEY_SECRET_ENV} is not set on this transcoder: it cannot encrypt", "invalid")
        try:
            key = await keys.package_key(job.parent_id)
        except KeyUnreadable as exc:
            raise JobError(str(exc), "internal") from None
        if key is None:
            raise JobError(f"package {job.parent_id} has no content key", "invalid")
        return key

    async def _run(self, job: JobRequested, lease: JobLease | None) -> None:
        """Run a job whose lease this run holds; end it only from that lease."""
        assert self.w.job_state is not None
        running = Running(job.job_id, job.parent_id, lease=lease)
        self.w.running[job.job_id] = running
        JOBS_IN_FLIGHT.inc()
        started = time.monotonic()
        started_at = time.time()
        ticker = asyncio.create_task(keep_lease(self.w, self.msg, job, running, self.attempt))
        try:

            def on_progress(pct: float, rep: ProgressReport) -> None:
                running.progress = max(running.progress, pct)
                running.report = rep

            outcome = await run_job(
                job,
                content_key=await self._content_key(job),
                s3=self.w.s3,
                s3_settings=self.w.settings.s3,
                workdir=self.w.settings.workdir,
                on_progress=on_progress,
                cancelled=running.cancel,
                limits=self.w.limits,
                known_info=self.w.known_info,
                scene_store=self.w.scenes,
            )
        except JobError as err:
            ticker.cancel()
            if not await self._gone(job, running):
                await self._on_error(job, err, started_at, running)
            return
        except Exception as exc:  # a bug or an unexpected library error: retry, then dead-letter
            ticker.cancel()
            log.exception("job crashed", extra={"job_id": job.job_id})
            if not await self._gone(job, running):
                crash = JobError(f"internal error: {exc}", "internal", retryable=True)
                await self._on_error(job, crash, started_at, running)
            return
        finally:
            ticker.cancel()
            self.w.running.pop(job.job_id, None)
            JOBS_IN_FLIGHT.dec()
            JOB_SECONDS.labels(job.kind).observe(time.monotonic() - started)
        await self._completed(job, outcome, started_at, running)

    async def _completed(
        self, job: JobRequested, outcome: Outcome, started_at: float, running: Running
    ) -> None:
        """Report a job this run finished, from its lease; a package's last child completes the package."""
        assert self.w.job_state is not None
        lease = running.lease
        done = JobCompleted(
            job_id=job.job_id,
            output_key=outcome.output_key,
            output_bucket=outcome.output_bucket,
            output_keys=outcome.output_keys,
            output_size=outcome.output_size,
            duration=outcome.duration,
            elapsed=round(outcome.elapsed, 3),
            worker=self.w.settings.instance,
            attempt=self.attempt,
            loudness=outcome.loudness,
            rendition=outcome.rendition,
            quality=outcome.quality,
            scene_cuts=outcome.scene_cuts,
            retry=job.retry,
            outcome="not_kept" if outcome.keep is not None and not outcome.keep.kept else "kept",
            keep=outcome.keep,
        )
        if await self._gone(job, running):
            return
        # Ended from this run's lease (compare-and-set): if another run took the job over meanwhile,
        # that run reports it, never both.
        if lease is None:
            await self.w.job_state.completed(done)
        elif not await lease.complete(done):
            running.lost = "its lease was taken over before it completed"
            await self._gone(job, running)
            return
        await self._attempt_ended(job, started_at, "completed")
        await publish_event(
            self.w.js, s.JOB_COMPLETED, done, msg_id=outcome_id("completed", job.job_id, job.retry)
        )
        graph = self.w.graphs.of_child(job)
        if graph is not None:  # the last child of a graph completes its parent
            try:
                await graph.child_completed(job)
            except Exception as exc:  # storage or NATS: redelivery finishes it (see the completed path)
                log.warning("%s not finished yet: %s", graph.noun, exc, extra={"job_id": job.job_id})
                await self.msg.nak(
                    delay=retry_delay(self.attempt, self.w.settings.retry_base, self.w.settings.retry_max)
                )
                return
        await self.msg.ack_sync()
        JOBS_FINISHED.labels(job.kind, "completed").inc()
        if running.report.speed:
            FFMPEG_SPEED.labels(job.kind).observe(running.report.speed)
        judged = "" if outcome.keep is None else f"; output {'kept' if outcome.keep.kept else 'not kept'}"
        log.info("job completed in %.1fs%s", outcome.elapsed, judged, extra={"job_id": job.job_id})

    async def _attempt_ended(
        self,
        job: JobRequested,
        started_at: float | None,
        outcome: AttemptOutcome,
        err: JobError | None = None,
    ) -> None:
        """Every attempt that ran, as it ended, for the job's attempts log (GET /api/jobs/{id}/log)."""
        if started_at is None:
            return
        event = JobAttempt(
            job_id=job.job_id,
            attempt=self.attempt,
            retry=job.retry,
            worker=self.w.settings.instance,
            started_at=started_at,
            outcome=outcome,
            reason=err.reason if err is not None else None,
            error=str(err)[:2000] if err is not None else None,
            log=err.log if err is not None else "",
        )
        await publish_event(
            self.w.js, s.JOB_ATTEMPT, event, msg_id=f"attempt-{job.job_id}-{job.retry}-{self.attempt}"
        )

    async def _gone(self, job: JobRequested, running: Running) -> bool:
        """A run that lost its job (see :attr:`Running.lost`) stops there: no outcome reported, nothing
        acked (the message belongs to the run that holds the job). A lease that only ran out unrenewed
        (the bucket unreachable) is handed back if it is still ours, so the job runs again at once."""
        if running.lost is None:
            return False
        log.warning("job not reported by this run: %s", running.lost, extra={"job_id": job.job_id})
        JOBS_FINISHED.labels(job.kind, "lease_lost").inc()
        if running.lease is not None and running.lease.expired() and await running.lease.release():
            with contextlib.suppress(Exception):
                await self.msg.nak()
        return True

    async def _on_error(
        self,
        job: JobRequested,
        err: JobError,
        started_at: float | None = None,
        running: Running | None = None,
    ) -> None:
        lease = running.lease if running is not None else None
        status = failed_status(err.reason)
        if status == "cancelled" and self.w.stopping.is_set():
            await self._attempt_ended(job, started_at, "handed_back", err)
            if lease is not None:
                await lease.release()
            await self.msg.nak()  # shutting down: hand the job to another replica at once
            JOBS_FINISHED.labels(job.kind, "handed_back").inc()
            log.info("job handed back on shutdown", extra={"job_id": job.job_id})
            return
        if err.retryable and self.attempt < self.w.max_deliver:
            delay = retry_delay(self.attempt, self.w.settings.retry_base, self.w.settings.retry_max)
            log.warning(
                "attempt %d failed (%s); retry in %.0fs",
                self.attempt,
                err,
                delay,
                extra={"job_id": job.job_id},
            )
            await self._attempt_ended(job, started_at, "retrying", err)
            if lease is not None:
                await lease.release()
            await self.msg.nak(delay=delay)
            JOBS_FINISHED.labels(job.kind, "retried").inc()
            return
        if err.retryable:
            await self._dead_letter(f"gave up after {self.attempt} attempts: {err}", job.job_id)
            err = JobError(f"gave up after {self.attempt} attempts: {err}", err.reason)
        if lease is not None:  # ended from this run's lease: never by two runs
            ended = await (lease.cancel() if status == "cancelled" else lease.fail())
            if not ended:
                assert running is not None
                running.lost = f"the job was taken over or ended meanwhile ({err.reason})"
                await self._gone(job, running)
                return
        await self._attempt_ended(job, started_at, status, err)
        if status == "cancelled" and lease is None:
            assert self.w.job_state is not None
            await self.w.job_state.cancelled(job.job_id)
        await self._fail(job, err, written=lease is not None)
        await self.msg.ack_sync()
        JOBS_FINISHED.labels(job.kind, status).inc()

    async def _fan_out(self, graph: JobGraph[Any], job: JobRequested) -> bool:
        """A job graph's parent (a package, a transcode that may be chunked): probe its source (the
        catalog's probe when there is one), plan it, publish its children, ack; its completion comes
        from its last child. False when it runs as one job after all (a transcode of a short source)."""
        try:
            normalized = normalize_job(job)
            info = await read_source(
                normalized,
                s3=self.w.s3,
                s3_settings=self.w.settings.s3,
                limits=self.w.limits,
                known_info=self.w.known_info,
            )
            if not graph.runs_as_graph(normalized, info):
                return False
            await self._kept_in_progress(graph.fan_out(normalized, info, self.attempt))
        except JobRequestError as exc:
            await self._on_error(job, JobError(str(exc), "invalid"))
            return True
        except JobError as err:
            await self._on_error(job, err)
            return True
        await self.msg.ack_sync()
        return True

    async def _kept_in_progress(self, planning: Awaitable[Any]) -> None:
        """Await a fan-out, keeping this delivery in progress meanwhile: a per-title package analyses its
        source first, which may take longer than the ack wait."""
        task = asyncio.ensure_future(planning)
        while not task.done():
            await asyncio.wait({task}, timeout=self.w.ack_wait / 3)
            if not task.done():
                with contextlib.suppress(Exception):
                    await self.msg.in_progress()
        task.result()

    async def _claim_start(self, job: JobRequested) -> bool:
        """Whether this copy of the request is the one to run (a queued job may have moved between
        classes); marks it started. A child never moves: its package does."""
        assert self.w.places is not None
        try:
            normalize_job(job)
        except JobRequestError:
            return True  # an invalid id is no KV key; run_job fails the job with the reason
        copy = QueuePlace(
            priority=self.cls,
            move=move_number(self.msg.headers),
            retry=job.retry,
            seq=self.msg.metadata.sequence.stream,
        )
        return await self.w.places.claim(job.job_id, copy)

    async def _claim_output(self, job: JobRequested) -> None:
        """Every output belongs to one job: a job naming another's output key is refused."""
        assert self.w.owners is not None
        try:
            normalized = normalize_job(job)
        except JobRequestError:
            return  # run_job fails it with the reason
        assert normalized.output_key is not None
        bucket = normalized.output_bucket or self.w.settings.s3.bucket_out
        owner = await self.w.owners.claim(bucket, normalized.output_key, job.job_id)
        if owner is not None:
            raise JobRequestError(f"output_key {normalized.output_key!r} belongs to job {owner}")

    async def _fail(self, job: JobRequested, err: JobError, written: bool = False) -> None:
        """Report a job that ended without output; ``written``: its state is written already (from
        its lease)."""
        log.info("job failed (%s): %s", err.reason, str(err)[:300], extra={"job_id": job.job_id})
        assert self.w.job_state is not None
        # A cancel has its own entry, written by whoever cancelled.
        if failed_status(err.reason) == "failed" and not written:
            await self.w.job_state.failed(job.job_id)
        await publish_event(
            self.w.js,
            s.JOB_FAILED,
            JobFailed(
                job_id=job.job_id,
                error=str(err),
                reason=err.reason,
                worker=self.w.settings.instance,
                attempt=self.attempt,
                log=err.log,
                retry=job.retry,
            ),
            msg_id=outcome_id("failed", job.job_id, job.retry),
        )
        graph = self.w.graphs.of_child(job)
        if graph is not None:
            await graph.child_failed(job, str(err), err.reason, self.attempt)

    async def _dead_letter(self, error: str, job_id: str | None) -> None:
        await dead_letter(self.w.js, self.msg, error, s.DLQ_JOBS, job_id)
