"""The NATS side of a transcoder: one shared durable pull consumer per queue class (urgent, normal,
bulk) served by a weighted schedule (mpr_transcoder.scheduler), paused classes left alone, explicit acks,
in-progress acks while FFmpeg runs, NAK with backoff for transient failures, dead letters after
MaxDeliver, and a prompt NAK of unfinished work on SIGTERM.

Written on nats-py directly rather than a FastStream subscriber: the worker loop needs exact control of
when and from which class it fetches (only with a free slot), of in-progress acks during a long FFmpeg
run, of NAK delays, and of the order of shutdown (stop fetching, kill FFmpeg, NAK, drain)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, dead_letter, publish_event
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.events import (
    PRIORITIES,
    AttemptOutcome,
    JobAttempt,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
)
from mpr_common.jobs import (
    CHILD_KINDS,
    CHILD_ONLY,
    BucketPolicy,
    JobRequestError,
    job_identity,
    normalize_job,
    outcome_id,
)
from mpr_common.jobstate import UNAVAILABLE, JobLease, JobState, QueuePlace, QueuePlaces, move_number
from mpr_common.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING, CONSUMER_PRESENT
from mpr_common.outputs import OutputOwners
from mpr_common.packages import PackageStore
from mpr_common.runtime import freeze_startup_heap
from mpr_common.tracing import span_from

from .ffmpeg_runner import ProgressReport
from .metrics import FFMPEG_SPEED, JOB_SECONDS, JOBS_FINISHED, JOBS_IN_FLIGHT
from .packaging import Packager
from .pause_flags import PauseFlags
from .pipeline import JobError, Limits, read_source, run_job
from .pull import PullRefused, pull_one
from .scheduler import Scheduler
from .settings import TranscoderSettings
from .source_info import catalog_probe

log = logging.getLogger("mpr.transcoder")

BIND_RETRY = 1.0
LONG_POLL = 1.0  # how long an idle replica's pulls wait before they are made again
# A package's children of every class: a child is run only when it comes from one of these.
CHILD_SUBJECTS = frozenset(s.child_subject(p) for p in PRIORITIES)


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff for the NAK after a transient failure (attempt counts from 1)."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


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


class Worker:
    def __init__(self, settings: TranscoderSettings, nc: Client, s3: Any) -> None:
        self.settings = settings
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.s3 = s3
        self.job_state: JobState | None = None
        self.owners: OutputOwners | None = None
        self.packager: Packager | None = None
        self.places: QueuePlaces | None = None
        self.flags: PauseFlags | None = None
        self.classes = settings.served_classes()
        self.scheduler = Scheduler(self.classes, settings.share_every)
        # The consumers' own settings (their owner, mpr-setup, chose them): read back when binding.
        self.ack_wait = 30.0
        self.max_deliver = 1
        self.stopping = asyncio.Event()
        self.consumers_present = dict.fromkeys(self.classes, True)
        self.running: dict[str, Running] = {}
        self.tasks: set[asyncio.Task] = set()
        # The catalog's probe of a source, when it has one: saves running ffprobe again.
        self.known_info = functools.partial(catalog_probe, self.js)
        self.policy = BucketPolicy.of(settings.s3)
        self.limits = Limits.from_settings(settings)

    # --- lifecycle -----------------------------------------------------------------------------
    async def setup(self) -> None:
        """Bind to the KV buckets and the class consumers that mpr-setup made (waiting for them), and
        read which classes are paused."""
        while True:
            try:
                state_kv = await self.js.key_value(s.JOB_STATE_KV)
                self.job_state = JobState(state_kv)
                self.places = QueuePlaces(state_kv)
                self.flags = PauseFlags(await self.js.key_value(s.QUEUES_KV), self.classes)
                self.owners = OutputOwners(await self.js.key_value(s.OUTPUT_OWNERS_KV))
                self.packager = Packager(
                    self.js,
                    self.s3,
                    self.job_state,
                    PackageStore(await self.js.key_value(s.PACKAGES_KV)),
                    self.settings.s3.bucket_out,
                    self.settings.instance,
                )
                infos = [
                    await self.js.consumer_info(s.JOBS_STREAM, s.transcoders_durable(c)) for c in self.classes
                ]
                break
            except Exception as exc:
                if self.stopping.is_set():
                    raise
                log.warning("waiting for the job queue (run mpr-setup): %s", exc)
                await asyncio.sleep(BIND_RETRY)
        self.ack_wait = min(float(i.config.ack_wait or self.ack_wait) for i in infos)
        self.max_deliver = min(int(i.config.max_deliver or self.max_deliver) for i in infos)
        await self.nc.subscribe(s.JOB_CANCEL, cb=self._on_cancel)

    async def run(self) -> None:
        await self.setup()
        assert self.flags is not None
        watch = asyncio.create_task(self.flags.follow(self.nc, self.stopping))
        # Nothing is fetched before the pause flags are known: a replica started while a class is
        # paused must not take its jobs.
        while not self.flags.loaded.is_set() and not self.stopping.is_set():
            await self._wait_for(self.flags.loaded, 5.0)
            if not self.flags.loaded.is_set():
                log.warning("waiting for the queue flags (%s)", s.QUEUES_KV)
        slots = asyncio.Semaphore(self.settings.concurrency)
        log.info(
            "transcoder %s ready (concurrency %d, classes %s)",
            self.settings.instance,
            self.settings.concurrency,
            ", ".join(self.classes),
        )
        freeze_startup_heap()
        while not self.stopping.is_set():
            await slots.acquire()
            got = await self._next_job()
            if got is None:  # stopping
                slots.release()
                break
            cls, msg = got
            task = asyncio.create_task(self._handle(msg, cls))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        watch.cancel()
        await self._shutdown()

    async def _next_job(self) -> tuple[str, Msg] | None:
        """A job for a free slot: of the first class in the scheduler's order that has one waiting;
        with none waiting, the first to come to any class. Paused classes are left alone, and nothing
        spins while there is no job. None once stopping."""
        assert self.flags is not None
        while not self.stopping.is_set():
            self.flags.changed.clear()
            eligible = [c for c in self.classes if c not in self.flags.paused]
            if not eligible:  # all paused: until one resumes
                await self._wait_for(self.flags.changed, None)
                continue
            began = time.monotonic()
            got = await self._first_waiting(self.scheduler.order(eligible)) if len(eligible) > 1 else None
            if got is None:
                got = await self._wait_any(eligible)
            if got is not None:
                if await self._take(*got):
                    return got
                continue
            rest = began + LONG_POLL - time.monotonic()  # pulls refused at once: no spinning
            if rest > 0:
                await self._wait_for(self.flags.changed, rest)
        return None

    async def _first_waiting(self, order: list[str]) -> tuple[str, Msg] | None:
        """A job waiting in the first class of ``order`` that has one, asking each at once."""
        for cls in order:
            msg = await self._pull(cls, None)
            if msg is not None:
                return cls, msg
        return None

    async def _wait_any(self, classes: list[str]) -> tuple[str, Msg] | None:
        """Wait on every class at once until a job comes (the other waits are given up), a pause flag
        changes or we stop. Two jobs that came at the same instant: the second is handed back."""
        assert self.flags is not None
        abort = asyncio.Event()

        async def pull(cls: str) -> tuple[str, Msg | None]:
            msg = await self._pull(cls, LONG_POLL, abort)
            if msg is not None:
                abort.set()
            return cls, msg

        flags_or_stop = asyncio.ensure_future(self._wait_for(self.flags.changed, None))
        flags_or_stop.add_done_callback(lambda _: abort.set())
        try:
            results = await asyncio.gather(*(pull(c) for c in classes))
        finally:
            flags_or_stop.cancel()
        got = [(cls, msg) for cls, msg in results if msg is not None]
        for _, extra in got[1:]:
            await self._hand_back(extra)
        return got[0] if got else None

    async def _pull(self, cls: str, wait: float | None, abort: asyncio.Event | None = None) -> Msg | None:
        try:
            return await pull_one(self.nc, s.JOBS_STREAM, s.transcoders_durable(cls), wait, abort)
        except PullRefused as exc:  # e.g. the consumer is gone: watch_lag reports it
            log.debug("pull from %s refused: %s", cls, exc)
        except Exception as exc:  # NATS restarting: keep trying
            log.debug("pull from %s failed: %s", cls, exc)
        return None

    async def _take(self, cls: str, msg: Msg) -> bool:
        """Take a fetched job unless its class was paused (or we began stopping) while it came: then
        hand it back for later or for another replica."""
        assert self.flags is not None
        if self.stopping.is_set() or cls in self.flags.paused:
            await self._hand_back(msg)
            return False
        self.scheduler.served(cls)
        return True

    async def _hand_back(self, msg: Msg) -> None:
        """Return a fetched job unstarted: it is delivered again at once (to a free replica)."""
        with contextlib.suppress(Exception):
            await msg.nak()

    async def _wait_for(self, event: asyncio.Event, timeout: float | None) -> None:
        """Until ``event`` is set, we are stopping, or ``timeout`` has passed."""
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    @property
    def consumer_present(self) -> bool:
        return all(self.consumers_present.values())

    def ready(self) -> bool:
        # A lost consumer is a total outage of its class that no other probe shows: jobs would queue silently.
        return self.nc.is_connected and self.consumer_present and not self.stopping.is_set()

    async def watch_lag(self, every: float = 5.0) -> None:
        """Each class consumer's lag as metrics (what KEDA scales on, seen from inside), and its presence."""
        while not self.stopping.is_set():
            for cls in self.classes:
                await self._check_consumer(cls)
            await asyncio.sleep(every)

    async def _check_consumer(self, cls: str) -> None:
        labels = (s.JOBS_STREAM, s.transcoders_durable(cls))
        present = self.consumers_present[cls]
        try:
            info = await self.js.consumer_info(*labels)
        except NotFoundError:
            if present:
                log.error("the %s consumer is gone: no job will run until mpr-setup re-creates it", labels[1])
            present = False
        except Exception as exc:  # NATS reconnecting: the connection check covers it
            log.debug("consumer info: %s", exc)
        else:
            if not present:
                log.info("the %s consumer is back", labels[1])
            present = True
            CONSUMER_PENDING.labels(*labels).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)
        self.consumers_present[cls] = present
        CONSUMER_PRESENT.labels(*labels).set(int(present))

    def stop(self) -> None:
        """Stop fetching; unfinished jobs are stopped and NAKed for another replica."""
        if not self.stopping.is_set():
            log.info("stopping: %d job(s) in flight will be handed back", len(self.running))
            self.stopping.set()
            for r in self.running.values():
                r.cancel.set()

    async def _shutdown(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.settings.shutdown_grace)
        with contextlib.suppress(Exception):
            await self.nc.drain()

    async def _on_cancel(self, msg: Msg) -> None:
        with contextlib.suppress(DecodeError, ValidationError):
            ev = decode(msg.data, JobCancel)
            for r in self.running.values():  # the job, or the children of a package
                if ev.job_id in (r.job_id, r.parent_id):
                    r.cancel.set()

    # --- one message ----------------------------------------------------------------------------
    async def _handle(self, msg: Msg, cls: str) -> None:
        deliveries = msg.metadata.num_delivered
        try:
            job = job_identity(
                decode(msg.data, JobRequested), (msg.headers or {}).get(MSG_ID), msg.metadata.sequence.stream
            )
        except (DecodeError, ValidationError) as exc:
            await self._dead_letter(msg, f"undecodable job request: {exc}", None)
            await msg.term()
            return
        if (job.parent_id is not None) != (
            msg.subject in CHILD_SUBJECTS
        ):  # no state written for a look-alike
            await self._dead_letter(msg, CHILD_ONLY, job.job_id)
            await msg.term()
            return
        try:
            with span_from("mpr.transcode", msg.headers, job_id=job.job_id, job_kind=job.kind):
                await self._process(msg, job, deliveries, cls)
        except Exception:
            # NATS or the KV store failed while reporting: leave it for redelivery.
            log.exception("job bookkeeping failed", extra={"job_id": job.job_id})
            with contextlib.suppress(Exception):
                await msg.nak(
                    delay=retry_delay(deliveries, self.settings.retry_base, self.settings.retry_max)
                )

    async def _process(self, msg: Msg, job: JobRequested, attempt: int, cls: str) -> None:
        assert self.job_state is not None
        if await self._ended(msg, job, attempt):
            return
        checked = await self._admit(msg, job, attempt, cls)
        if checked is None:
            return
        job = checked
        try:
            normalize_job(job)
        except JobRequestError:  # an invalid id is no KV key: run_job fails the job with the reason
            await self._run(msg, job, attempt, None)
            return
        lease = JobLease(
            self.job_state,
            job.job_id,
            worker=self.settings.instance,
            retry=job.retry,
            seconds=self.settings.lease_seconds,
        )
        while True:
            verdict = await self._acquire(msg, job, lease)
            if verdict == "taken":
                break
            if verdict is None:  # stopping while another run holds it: that run keeps the message
                return
            if await self._ended(msg, job, attempt):  # it ended (or was retried) while we looked
                return
        await self._run(msg, job, attempt, lease)

    async def _ended(self, msg: Msg, job: JobRequested, attempt: int) -> bool:
        """A delivery of a job that has ended (or was retried since) is acked, its outcome reported
        again (de-duplicated); True when this delivery is done with."""
        assert self.job_state is not None and self.packager is not None
        state = await self.job_state.get(job.job_id, job.retry)
        if state == "superseded":  # retried since, as a newer generation: that request runs, not this one
            log.info("request of an older generation (%d) skipped", job.retry, extra={"job_id": job.job_id})
            await msg.ack_sync()
            return True
        if isinstance(state, JobCompleted):
            # Done by an earlier delivery that died before its ack: report again (deduplicated) and ack.
            await publish_event(
                self.js,
                s.JOB_COMPLETED,
                msgspec.structs.replace(state, retry=job.retry),
                msg_id=outcome_id("completed", job.job_id, job.retry),
            )
            if job.parent_id is not None and job.kind in CHILD_KINDS:  # it may have died before the manifests
                await self.packager.child_completed(job)
            await msg.ack_sync()
            return True
        if state == "cancelled":
            await self._fail(job, JobError("cancelled by request", "cancelled"), attempt)
            await msg.ack_sync()
            return True
        if state == "failed":  # ended for good earlier (a replayed or re-created consumer): never rerun
            log.info("job already failed; not run again", extra={"job_id": job.job_id})
            await msg.ack_sync()
            return True
        return False

    async def _admit(self, msg: Msg, job: JobRequested, attempt: int, cls: str) -> JobRequested | None:
        """The checks of a job that has not ended, before it may run: its request (again: it may not
        have come through the API), its package, its output and its queue copy; a package is fanned
        out here. The job to run, or None when this delivery is done with."""
        assert self.job_state is not None and self.packager is not None
        try:  # jobs published straight onto NATS skipped the API's checks: re-check here
            self.policy.check(job)
            if job.parent_id is not None and job.kind in CHILD_KINDS:
                verdict = await self.packager.verdict(job)
                job = verdict.job
                if verdict.ended is not None:  # its package failed or was cancelled: never start
                    await self.job_state.cancelled(job.job_id)
                    ended = JobError(f"cancelled: package {job.parent_id} {verdict.ended}", "cancelled")
                    await self._fail(job, ended, attempt)
                    await msg.ack_sync()
                    return None
            await self._claim_output(job)
        except JobRequestError as exc:
            await self._fail(job, JobError(str(exc), "invalid"), attempt)
            await msg.ack_sync()
            return None
        if job.parent_id is None and not await self._claim_start(msg, job, cls):
            # Moved to another class (POST /api/jobs/{id}/move): the copy there runs, not this one.
            log.info(
                "job moved to another queue class; this copy from %s is skipped",
                cls,
                extra={"job_id": job.job_id},
            )
            await msg.ack_sync()
            JOBS_FINISHED.labels(job.kind, "moved").inc()
            return None
        if job.kind == "package":  # its children queue in the class it was taken from
            await self._fan_out(msg, msgspec.structs.replace(job, priority=cls), attempt)
            return None
        if job.job_id in self.running:  # the same job redelivered to this replica while it runs
            await msg.in_progress()
            return None
        return job

    async def _acquire(self, msg: Msg, job: JobRequested, lease: JobLease) -> str | None:
        """Take the job's lease. While another run holds it live, this delivery is not started: it is
        kept in progress (no NAK: that would spend a delivery of MaxDeliver while the job runs) and the
        lease is looked at again, until the job ends (``ended``/``superseded``: the caller reads it),
        or the lease is left unrenewed for its whole duration (the holder died or was cut off: taken
        over, ``taken``). None once we stop: the holder's (or the next) delivery carries on."""
        beat_every, look_every = self._lease_cadence()
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
                    await msg.in_progress()
                last_beat = time.monotonic()
            await self._wait_for(asyncio.Event(), look_every)
            if self.stopping.is_set():
                return None

    def _lease_cadence(self) -> tuple[float, float]:
        """How often a run renews its lease and acks progress (well inside both ack_wait and the lease),
        and how often a waiting delivery looks at another run's lease."""
        every = max(0.5, min(self.ack_wait, self.settings.lease_seconds) / 3)
        return every, max(0.2, min(every, self.settings.lease_seconds / 10))

    async def _run(self, msg: Msg, job: JobRequested, attempt: int, lease: JobLease | None) -> None:
        """Run a job whose lease this run holds; end it only from that lease."""
        assert self.job_state is not None and self.packager is not None
        running = Running(job.job_id, job.parent_id, lease=lease)
        self.running[job.job_id] = running
        JOBS_IN_FLIGHT.inc()
        started = time.monotonic()
        started_at = time.time()
        ticker = asyncio.create_task(self._tick(msg, job, running, attempt))
        try:

            def on_progress(pct: float, rep: ProgressReport) -> None:
                running.progress = max(running.progress, pct)
                running.report = rep

            outcome = await run_job(
                job,
                s3=self.s3,
                s3_settings=self.settings.s3,
                workdir=self.settings.workdir,
                on_progress=on_progress,
                cancelled=running.cancel,
                limits=self.limits,
                known_info=self.known_info,
            )
        except JobError as err:
            ticker.cancel()
            if not await self._gone(msg, job, running):
                await self._on_error(msg, job, err, attempt, started_at, running)
            return
        except Exception as exc:  # a bug or an unexpected library error: retry, then dead-letter
            ticker.cancel()
            log.exception("job crashed", extra={"job_id": job.job_id})
            if not await self._gone(msg, job, running):
                crash = JobError(f"internal error: {exc}", "internal", retryable=True)
                await self._on_error(msg, job, crash, attempt, started_at, running)
            return
        finally:
            ticker.cancel()
            self.running.pop(job.job_id, None)
            JOBS_IN_FLIGHT.dec()
            JOB_SECONDS.labels(job.kind).observe(time.monotonic() - started)

        done = JobCompleted(
            job_id=job.job_id,
            output_key=outcome.output_key,
            output_bucket=outcome.output_bucket,
            output_keys=outcome.output_keys,
            output_size=outcome.output_size,
            duration=outcome.duration,
            elapsed=round(outcome.elapsed, 3),
            worker=self.settings.instance,
            attempt=attempt,
            loudness=outcome.loudness,
            rendition=outcome.rendition,
            retry=job.retry,
        )
        if await self._gone(msg, job, running):
            return
        # Ended from this run's lease (compare-and-set): if another run took the job over meanwhile,
        # that run reports it, never both.
        if lease is None:
            await self.job_state.completed(done)
        elif not await lease.complete(done):
            running.lost = "its lease was taken over before it completed"
            await self._gone(msg, job, running)
            return
        await self._attempt(job, attempt, started_at, "completed")
        await publish_event(
            self.js, s.JOB_COMPLETED, done, msg_id=outcome_id("completed", job.job_id, job.retry)
        )
        if job.parent_id is not None:  # the last child of a package writes its manifests
            try:
                await self.packager.child_completed(job)
            except Exception as exc:  # storage or NATS: redelivery finishes it (see the completed path)
                log.warning("package not finished yet: %s", exc, extra={"job_id": job.job_id})
                await msg.nak(delay=retry_delay(attempt, self.settings.retry_base, self.settings.retry_max))
                return
        await msg.ack_sync()
        JOBS_FINISHED.labels(job.kind, "completed").inc()
        if running.report.speed:
            FFMPEG_SPEED.labels(job.kind).observe(running.report.speed)
        log.info("job completed in %.1fs", outcome.elapsed, extra={"job_id": job.job_id})

    async def _attempt(
        self,
        job: JobRequested,
        attempt: int,
        started_at: float | None,
        outcome: AttemptOutcome,
        err: JobError | None = None,
    ) -> None:
        """Every attempt that ran, as it ended, for the job's attempts log (GET /api/jobs/{id}/log)."""
        if started_at is None:
            return
        event = JobAttempt(
            job_id=job.job_id,
            attempt=attempt,
            retry=job.retry,
            worker=self.settings.instance,
            started_at=started_at,
            outcome=outcome,
            reason=err.reason if err is not None else None,
            error=str(err)[:2000] if err is not None else None,
            log=err.log if err is not None else "",
        )
        await publish_event(
            self.js, s.JOB_ATTEMPT, event, msg_id=f"attempt-{job.job_id}-{job.retry}-{attempt}"
        )

    async def _gone(self, msg: Msg, job: JobRequested, running: Running) -> bool:
        """A run that lost its job (see :attr:`Running.lost`) stops there: no outcome reported, nothing
        acked (the message belongs to the run that holds the job). A lease that only ran out unrenewed
        (the bucket unreachable) is handed back if it is still ours, so the job runs again at once."""
        if running.lost is None:
            return False
        log.warning("job not reported by this run: %s", running.lost, extra={"job_id": job.job_id})
        JOBS_FINISHED.labels(job.kind, "lease_lost").inc()
        if running.lease is not None and running.lease.expired() and await running.lease.release():
            with contextlib.suppress(Exception):
                await msg.nak()
        return True

    async def _on_error(
        self,
        msg: Msg,
        job: JobRequested,
        err: JobError,
        attempt: int,
        started_at: float | None = None,
        running: Running | None = None,
    ) -> None:
        lease = running.lease if running is not None else None
        if err.reason == "cancelled" and self.stopping.is_set():
            await self._attempt(job, attempt, started_at, "handed_back", err)
            if lease is not None:
                await lease.release()
            await msg.nak()  # shutting down: hand the job to another replica at once
            JOBS_FINISHED.labels(job.kind, "handed_back").inc()
            log.info("job handed back on shutdown", extra={"job_id": job.job_id})
            return
        if err.retryable and attempt < self.max_deliver:
            delay = retry_delay(attempt, self.settings.retry_base, self.settings.retry_max)
            log.warning(
                "attempt %d failed (%s); retry in %.0fs", attempt, err, delay, extra={"job_id": job.job_id}
            )
            await self._attempt(job, attempt, started_at, "retrying", err)
            if lease is not None:
                await lease.release()
            await msg.nak(delay=delay)
            JOBS_FINISHED.labels(job.kind, "retried").inc()
            return
        if err.retryable:
            await self._dead_letter(msg, f"gave up after {attempt} attempts: {err}", job.job_id)
            err = JobError(f"gave up after {attempt} attempts: {err}", err.reason)
        if lease is not None:  # ended from this run's lease: never by two runs
            ended = await (lease.cancel() if err.reason == "cancelled" else lease.fail())
            if not ended:
                assert running is not None
                running.lost = f"the job was taken over or ended meanwhile ({err.reason})"
                await self._gone(msg, job, running)
                return
        await self._attempt(
            job, attempt, started_at, "cancelled" if err.reason == "cancelled" else "failed", err
        )
        if err.reason == "cancelled" and lease is None:
            assert self.job_state is not None
            await self.job_state.cancelled(job.job_id)
        await self._fail(job, err, attempt, written=lease is not None)
        await msg.ack_sync()
        JOBS_FINISHED.labels(job.kind, "cancelled" if err.reason == "cancelled" else "failed").inc()

    async def _fan_out(self, msg: Msg, job: JobRequested, attempt: int) -> None:
        """A package: probe its source (the catalog's probe when there is one), plan it, publish its
        children, ack. Its completion comes from its last child."""
        assert self.packager is not None
        try:
            normalized = normalize_job(job)
            info = await read_source(
                normalized,
                s3=self.s3,
                s3_settings=self.settings.s3,
                limits=self.limits,
                known_info=self.known_info,
            )
            await self.packager.fan_out(normalized, info, attempt)
        except JobRequestError as exc:
            await self._on_error(msg, job, JobError(str(exc), "invalid"), attempt)
            return
        except JobError as err:
            await self._on_error(msg, job, err, attempt)
            return
        await msg.ack_sync()

    async def _claim_start(self, msg: Msg, job: JobRequested, cls: str) -> bool:
        """Whether this copy of the request is the one to run (a queued job may have moved between
        classes); marks it started. A child never moves: its package does."""
        assert self.places is not None
        try:
            normalize_job(job)
        except JobRequestError:
            return True  # an invalid id is no KV key; run_job fails the job with the reason
        copy = QueuePlace(
            priority=cls, move=move_number(msg.headers), retry=job.retry, seq=msg.metadata.sequence.stream
        )
        return await self.places.claim(job.job_id, copy)

    async def _claim_output(self, job: JobRequested) -> None:
        """Every output belongs to one job: a job naming another's output key is refused."""
        assert self.owners is not None
        try:
            normalized = normalize_job(job)
        except JobRequestError:
            return  # run_job fails it with the reason
        assert normalized.output_key is not None
        bucket = normalized.output_bucket or self.settings.s3.bucket_out
        owner = await self.owners.claim(bucket, normalized.output_key, job.job_id)
        if owner is not None:
            raise JobRequestError(f"output_key {normalized.output_key!r} belongs to job {owner}")

    async def _fail(self, job: JobRequested, err: JobError, attempt: int, written: bool = False) -> None:
        """Report a job that ended without output; ``written``: its state is written already (from
        its lease)."""
        log.info("job failed (%s): %s", err.reason, str(err)[:300], extra={"job_id": job.job_id})
        assert self.job_state is not None and self.packager is not None
        if (
            err.reason != "cancelled" and not written
        ):  # cancelled has its own entry, written by whoever cancelled
            await self.job_state.failed(job.job_id)
        await publish_event(
            self.js,
            s.JOB_FAILED,
            JobFailed(
                job_id=job.job_id,
                error=str(err),
                reason=err.reason,
                worker=self.settings.instance,
                attempt=attempt,
                log=err.log,
                retry=job.retry,
            ),
            msg_id=outcome_id("failed", job.job_id, job.retry),
        )
        if job.parent_id is not None and job.kind in CHILD_KINDS:
            await self.packager.child_failed(job, str(err), err.reason, attempt)

    async def _renew(self, running: Running) -> bool:
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
            self._lose(running, f"its lease was taken over by {holder}")
            return False
        if renewal == "ended":
            if lease.found.state == "cancelled":  # cancelled by request: ends as a cancel does
                running.cancel.set()
                return True
            self._lose(running, f"the job ended meanwhile ({lease.found.state})")
            return False
        return True

    def _lose(self, running: Running, why: str) -> None:
        if running.lost is None:
            running.lost = why
            log.warning("lost the job: %s; stopping FFmpeg", why, extra={"job_id": running.job_id})
        running.cancel.set()

    async def _dead_letter(self, msg: Msg, error: str, job_id: str | None) -> None:
        await dead_letter(self.js, msg, error, s.DLQ_JOBS, job_id)

    async def _tick(self, msg: Msg, job: JobRequested, running: Running, attempt: int) -> None:
        """Progress at least every 2 s; the lease renewed and in-progress acks sent well inside both
        the lease and ack_wait. A run that loses its lease stops FFmpeg and stops acking at once."""
        interval = min(self.settings.progress_interval, 2.0)
        heartbeat_every, _ = self._lease_cadence()
        last_beat = time.monotonic()  # the lease was taken just now
        while True:
            # Checked before anything is awaited: a run frozen past its deadline stops before its
            # FFmpeg's end can lead to an upload.
            if running.lease is not None and running.lease.expired():
                self._lose(running, "its lease ran out unrenewed")
                return
            now = time.monotonic()
            if now - last_beat >= heartbeat_every:
                last_beat = now
                if not await self._renew(running):
                    return
                with contextlib.suppress(Exception):
                    await msg.in_progress()
            with contextlib.suppress(Exception):
                await publish_event(
                    self.js,
                    s.JOB_PROGRESS,
                    JobProgress(
                        job_id=job.job_id,
                        progress=round(running.progress, 2),
                        speed=running.report.speed,
                        out_time=running.report.out_time,
                        worker=self.settings.instance,
                        attempt=attempt,
                        retry=job.retry,
                    ),
                    timeout=2.0,
                )
            await asyncio.sleep(interval)
