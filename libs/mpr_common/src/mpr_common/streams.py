"""JetStream streams, the job-state KV bucket and every durable consumer, created by one owner.

``mpr-setup`` (run by ``make dev``'s stack, a compose one-shot and a Kubernetes Job) is the only
place that creates or updates them; services bind to what it made and never declare their own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from . import subjects as s
from .events import PRIORITIES
from .settings import JobQueueSettings, NatsSettings

log = logging.getLogger(__name__)

DAY = 24 * 3600.0
CATALOG_MAX_DELIVER = 10
CATALOG_ACK_WAIT = 30.0
CATALOG_MAX_ACK_PENDING = 20_000  # room for several full batches in flight
WEBHOOK_LOG_AGE = 14 * DAY
WEBHOOK_LOG_BYTES = 1024**3
WEBHOOK_MAX_TASKS = 1_000_000
WEBHOOK_TASK_ACK_WAIT = 60.0  # longer than any one attempt (WEBHOOK_TIMEOUT is capped at half of it)
# What webhooks are sent for, of the jobs stream: requests (any queue class), outcomes, a package
# playable before it completes, and cancels.
WEBHOOK_JOB_SUBJECTS = [
    *(s.requested_subject(p) for p in PRIORITIES),
    *(s.child_subject(p) for p in PRIORITIES),
    s.JOB_DISPATCHED,
    s.JOB_COMPLETED,
    s.JOB_PLAYABLE,
    s.JOB_FAILED,
    s.JOB_CANCEL,
]


# MPR_JOBS keeps a job request (any class, parent or child) until its job has ended, however long it
# waits (a paused class, no transcoders), and job events for JOB_EVENT_TTL each (a per-message TTL, which
# the client adds: mpr_common.jetstream). The catalog retires the request of an ended job once it is
# REQUEST_RETIRE_AGE old (retire_ended_requests), well before the job-state entry that shows the end
# expires (its bucket's TTL is 14 days from the end).
JOB_EVENT_TTL = 14 * DAY
REQUEST_RETIRE_AGE = 7 * DAY
RETIRE_EVERY = 3600.0
REQUEST_SUBJECTS = [*(s.requested_subject(p) for p in PRIORITIES), *(s.child_subject(p) for p in PRIORITIES)]


def message_ttl(subject: str) -> float | None:
    """The per-message TTL of what is published on ``subject``: JOB_EVENT_TTL for a job event on
    MPR_JOBS; None (the stream's rule) for a job request and for every other stream."""
    if subject.startswith(s.JOBS_ALL[:-1]) and subject not in REQUEST_SUBJECTS:
        return JOB_EVENT_TTL
    return None


JOBS_MAX_BYTES = JobQueueSettings().max_bytes
TRANSCODER_CLASSES = {s.transcoders_durable(p): p for p in PRIORITIES}  # durable -> its queue class


def stream_configs(replicas: int = 1, jobs_max_bytes: int = JOBS_MAX_BYTES) -> list[StreamConfig]:
    common: dict[str, Any] = dict(
        storage=StorageType.FILE,
        num_replicas=replicas,
        discard=DiscardPolicy.OLD,
        retention=RetentionPolicy.LIMITS,
    )
    return [
        # Objects and scan status in one stream: the catalog reads a scan's end after its objects.
        StreamConfig(
            name=s.OBJECTS_STREAM,
            subjects=[s.OBJECTS_ALL],
            max_age=7 * DAY,
            duplicate_window=120.0,
            **common,
        ),
        StreamConfig(
            name=s.ASSETS_STREAM,
            subjects=[s.ASSETS_REGISTERED_ALL],
            max_msgs_per_subject=1,
            allow_direct=True,
            max_age=365 * DAY,
            duplicate_window=120.0,
            **common,
        ),
        # One stream for requests and job events: the catalog reads them in order.
        # The duplicate window drops a re-published job_id (Nats-Msg-Id) for an hour. When full it
        # refuses new messages (the API answers 503) rather than discarding accepted jobs. No age limit:
        # a request stays until its job has ended (then retired); events carry a TTL of their own.
        StreamConfig(
            name=s.JOBS_STREAM,
            subjects=[s.JOBS_ALL],
            max_age=0,
            allow_msg_ttl=True,
            duplicate_window=3600.0,
            max_bytes=jobs_max_bytes,
            **{**common, "discard": DiscardPolicy.NEW},
        ),
        StreamConfig(name=s.DLQ_STREAM, subjects=["mpr.dlq.>"], max_age=30 * DAY, **common),
        StreamConfig(name=s.MINIO_STREAM, subjects=[s.MINIO_EVENTS], max_age=7 * DAY, **common),
        StreamConfig(
            name=s.ADVISORIES_STREAM,
            subjects=[s.max_deliveries_advisory(p) for p in PRIORITIES],
            max_age=30 * DAY,
            **common,
        ),
        # Webhooks' delivery log: the latest record of each delivery (one subject each), a bounded while.
        StreamConfig(
            name=s.WEBHOOKS_STREAM,
            subjects=[f"{s.WEBHOOK_DELIVERIES}.>"],
            max_msgs_per_subject=1,
            allow_direct=True,
            max_age=WEBHOOK_LOG_AGE,
            max_bytes=WEBHOOK_LOG_BYTES,
            duplicate_window=120.0,
            **common,
        ),
        # Webhook attempts that are due: a work queue (gone once acked); when full it refuses new tasks
        # (the event they come from is retried) rather than dropping queued ones.
        StreamConfig(
            name=s.WEBHOOK_TASKS_STREAM,
            subjects=[s.WEBHOOK_TASKS],
            max_age=7 * DAY,
            max_msgs=WEBHOOK_MAX_TASKS,
            duplicate_window=3600.0,
            **{**common, "retention": RetentionPolicy.WORK_QUEUE, "discard": DiscardPolicy.NEW},
        ),
    ]


def consumer_configs(queue: JobQueueSettings) -> list[tuple[str, ConsumerConfig]]:
    """(stream, durable pull consumer) pairs. Every consumer starts at the stream's beginning and
    acknowledges each message explicitly."""

    def pull(durable: str, subject: str | list[str], **kw: Any) -> ConsumerConfig:
        many = not isinstance(subject, str)
        return ConsumerConfig(
            durable_name=durable,
            filter_subject=None if many else subject,  # type: ignore[arg-type]
            filter_subjects=list(subject) if many else None,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            **{"ack_wait": CATALOG_ACK_WAIT, "max_deliver": CATALOG_MAX_DELIVER, **kw},
        )

    return [
        # One per queue class: each scales on its own lag (KEDA); "normal" has the unsuffixed name.
        *(
            (
                s.JOBS_STREAM,
                pull(
                    s.transcoders_durable(p),
                    [s.requested_subject(p), s.child_subject(p)],
                    ack_wait=queue.ack_wait,
                    max_deliver=queue.max_deliver,
                    max_ack_pending=10_000,
                ),
            )
            for p in PRIORITIES
        ),
        (s.JOBS_STREAM, pull(s.CATALOG_JOBS_DURABLE, s.JOBS_ALL, max_ack_pending=CATALOG_MAX_ACK_PENDING)),
        (
            s.OBJECTS_STREAM,
            pull(s.CATALOG_OBJECTS_DURABLE, s.OBJECTS_ALL, max_ack_pending=CATALOG_MAX_ACK_PENDING),
        ),
        (s.ADVISORIES_STREAM, pull(s.CATALOG_ADVISORIES_DURABLE, s.MAX_DELIVERIES_ADVISORIES)),
        (s.MINIO_STREAM, pull(s.SCANNER_MINIO_DURABLE, s.MINIO_EVENTS)),
        # API replicas share it: rules fire on objects registered from its creation on (never on history)
        (
            s.ASSETS_STREAM,
            replace(pull(s.RULES_DURABLE, s.ASSETS_REGISTERED_ALL), deliver_policy=DeliverPolicy.NEW),
        ),
        # … and on outputs not kept (job.completed with outcome not_kept), from its creation on
        (
            s.JOBS_STREAM,
            replace(pull(s.RULES_JOBS_DURABLE, s.JOB_COMPLETED), deliver_policy=DeliverPolicy.NEW),
        ),
        # Webhooks: API replicas share each one, so every event is fanned out, and every attempt made,
        # by one replica. Events from the consumer's creation on (never history); never given up on.
        *(
            (stream, replace(pull(durable, subject, max_deliver=-1), deliver_policy=DeliverPolicy.NEW))
            for stream, durable, subject in (
                (s.JOBS_STREAM, s.WEBHOOKS_JOBS_DURABLE, WEBHOOK_JOB_SUBJECTS),
                (s.ASSETS_STREAM, s.WEBHOOKS_ASSETS_DURABLE, s.ASSETS_REGISTERED_ALL),
            )
        ),
        (
            s.WEBHOOK_TASKS_STREAM,
            pull(
                s.WEBHOOKS_TASKS_DURABLE,
                s.WEBHOOK_TASKS,
                ack_wait=WEBHOOK_TASK_ACK_WAIT,
                max_deliver=-1,  # a retry not due yet is NAKed until it is; attempts are counted in it
                max_ack_pending=WEBHOOK_MAX_TASKS,
            ),
        ),
    ]


async def ensure_streams(
    js: JetStreamContext, replicas: int = 1, jobs_max_bytes: int = JOBS_MAX_BYTES
) -> None:
    for cfg in stream_configs(replicas, jobs_max_bytes):
        try:
            await js.add_stream(cfg)
        except BadRequestError as exc:
            if cluster_forming(exc):
                raise
            # Exists with a different config: update what may be updated.
            try:
                await js.update_stream(cfg)
            except BadRequestError as exc:  # e.g. replicas cannot change here; keep the existing one
                log.warning("stream %s kept as is: %s", cfg.name, exc)


async def ensure_kv(
    js: JetStreamContext, bucket: str, replicas: int = 1, ttl: float | None = 14 * DAY, history: int = 1
) -> KeyValue:
    try:
        return await js.key_value(bucket)
    except NotFoundError:  # BucketNotFoundError: first start
        return await js.create_key_value(
            KeyValueConfig(
                bucket=bucket, history=history, ttl=ttl, storage=StorageType.FILE, replicas=replicas
            )
        )


async def ensure_job_state_kv(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await ensure_kv(js, s.JOB_STATE_KV, replicas)


async def first_unfinished_job(js: JetStreamContext, up_to: int, priority: str = "normal") -> int | None:
    """The stream sequence of the oldest job request of queue class ``priority`` whose job has not ended
    (no entry in the job-state KV), or None when every stored job has ended. Read by the setup owner when
    it has to re-create a transcoders' consumer, so that history is not delivered again."""
    from .codec import decode
    from .events import JobRequested
    from .jobs import job_identity
    from .jobstate import JobState

    state = JobState(await js.key_value(s.JOB_STATE_KV))

    async def first(subject: str) -> int | None:
        seq = 0
        while True:
            try:
                msg = await js.get_msg(s.JOBS_STREAM, seq + 1, subject=subject, next=True)
            except NotFoundError:
                return None
            seq = msg.seq or seq + 1
            if seq > up_to:
                return None
            try:
                job = job_identity(
                    decode(msg.data or b"", JobRequested), (msg.headers or {}).get("Nats-Msg-Id"), seq
                )
            except Exception:  # undecodable: the transcoder dead-letters it; it has not ended
                return seq
            if await state.get(job.job_id) is None:
                return seq

    subjects = (s.requested_subject(priority), s.child_subject(priority))
    found = [seq for seq in [await first(subject) for subject in subjects] if seq is not None]
    return min(found) if found else None


async def retire_ended_requests(
    js: JetStreamContext, up_to: int | None = None, now: float | None = None, age: float = REQUEST_RETIRE_AGE
) -> int:
    """Delete from MPR_JOBS each job request (every class, parents and children) published at least
    ``age`` ago whose job has ended (a terminal entry in the job-state KV), or that cannot be decoded (it
    never runs: it was dead-lettered), up to stream sequence ``up_to``. Returns how many went. A request
    whose job has not ended is never deleted, however old."""
    from .codec import decode
    from .events import JobRequested
    from .jobs import job_identity
    from .jobstate import JobState

    state = JobState(await js.key_value(s.JOB_STATE_KV))
    cutoff = (time.time() if now is None else now) - age
    retired = 0
    for subject in REQUEST_SUBJECTS:
        seq = 0
        while True:
            try:
                msg = await js.get_msg(s.JOBS_STREAM, seq + 1, subject=subject, next=True)
            except NotFoundError:
                break
            seq = msg.seq or seq + 1
            if (up_to is not None and seq > up_to) or (msg.time and msg.time.timestamp() > cutoff):
                break  # what follows on this subject is later, and younger
            try:
                job = job_identity(
                    decode(msg.data or b"", JobRequested), (msg.headers or {}).get("Nats-Msg-Id"), seq
                )
                ended = await state.get(job.job_id) not in (None, "superseded")
            except Exception:  # undecodable: never run (dead-lettered, payload and all)
                ended = True
            if ended:
                try:
                    await js.delete_msg(s.JOBS_STREAM, seq)
                    retired += 1
                except NotFoundError:  # another replica retired it first
                    pass
    return retired


async def retire_requests_forever(
    js: JetStreamContext, durable: str = s.CATALOG_JOBS_DURABLE, every: float = RETIRE_EVERY
) -> None:
    """Run :func:`retire_ended_requests` every ``every`` seconds, never past what ``durable`` (the
    catalog's consumer, which reads every request) has acknowledged."""
    while True:
        try:
            floor = (await js.consumer_info(s.JOBS_STREAM, durable)).ack_floor
            retired = await retire_ended_requests(js, up_to=floor.stream_seq if floor else 0)
            if retired:
                log.info("retired %d requests of ended jobs from %s", retired, s.JOBS_STREAM)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; nothing is lost by waiting
            log.warning("retiring ended job requests failed: %s", exc)
        await asyncio.sleep(every)


async def ensure_consumers(js: JetStreamContext, queue: JobQueueSettings) -> None:
    for stream, cfg in consumer_configs(queue):
        assert cfg.durable_name is not None
        try:
            existing: ConsumerConfig | None = (await js.consumer_info(stream, cfg.durable_name)).config
        except NotFoundError:
            existing = None
        if existing is not None:
            cfg = _kept_start(cfg, existing)
        elif cfg.durable_name in TRANSCODER_CLASSES:
            cfg = await _resume_point(js, cfg, TRANSCODER_CLASSES[cfg.durable_name])
        try:  # creates, or updates what may be updated (ack_wait, max_deliver, …)
            await js.add_consumer(stream, cfg)
        except BadRequestError as exc:  # e.g. a changed filter subject: keep the existing one
            if cluster_forming(exc):
                raise
            log.warning("consumer %s kept as is: %s", cfg.durable_name, exc)


def _kept_start(cfg: ConsumerConfig, existing: ConsumerConfig) -> ConsumerConfig:
    """An existing consumer keeps where it started (nats-server refuses to update a deliver policy):
    a consumer re-created from a start sequence is updated by every later deploy's setup."""
    return replace(
        cfg,
        deliver_policy=existing.deliver_policy,
        opt_start_seq=existing.opt_start_seq,
        opt_start_time=existing.opt_start_time,
    )


async def _resume_point(js: JetStreamContext, cfg: ConsumerConfig, priority: str) -> ConsumerConfig:
    """A missing transcoders' consumer over a stream that holds jobs (it was deleted, or lost) starts at
    the oldest job of its class that has not ended, not at the stream's beginning: ended jobs are not
    delivered again (those after it are skipped by the transcoders, which read the same job-state KV)."""
    # Taken first: whatever is published while we look has a later sequence and is delivered.
    last = (await js.stream_info(s.JOBS_STREAM)).state.last_seq
    start = await first_unfinished_job(js, last, priority) or last + 1
    if start <= 1:
        return cfg
    log.warning("re-creating %s from stream sequence %d (earlier jobs have ended)", cfg.durable_name, start)
    return replace(cfg, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)


async def setup_jetstream(js: JetStreamContext, nats: NatsSettings, queue: JobQueueSettings) -> None:
    """Everything MPR needs on the server, idempotently: safe to run on every deploy."""
    await ensure_streams(js, nats.stream_replicas, queue.max_bytes)
    await ensure_job_state_kv(js, nats.stream_replicas)
    await ensure_kv(js, s.OUTPUT_OWNERS_KV, nats.stream_replicas, ttl=None)  # owners are forever
    await ensure_kv(js, s.PACKAGES_KV, nats.stream_replicas)  # as long as the job states they refer to
    await ensure_kv(js, s.WEBHOOKS_KV, nats.stream_replicas, ttl=None)  # subscriptions, until deleted
    await ensure_kv(js, s.QUEUES_KV, nats.stream_replicas, ttl=None)  # a paused class stays paused
    await ensure_kv(js, s.DLQ_REPLAYS_KV, nats.stream_replicas, ttl=30 * DAY)  # as long as the letters
    await ensure_kv(js, s.CONTENT_KEYS_KV, nats.stream_replicas, ttl=None)  # as long as the packages
    # a source's scenes: detected again after 30 days unused, or at once when the object changes
    await ensure_kv(js, s.SCENES_KV, nats.stream_replicas, ttl=30 * DAY)
    # Automation: a template's history is its revisions (64, the most KV keeps); rules and their firings
    # (once per rule and object version) are kept for good.
    await ensure_kv(js, s.TEMPLATES_KV, nats.stream_replicas, ttl=None, history=64)
    await ensure_kv(js, s.RULES_KV, nats.stream_replicas, ttl=None)
    await ensure_kv(js, s.RULE_FIRINGS_KV, nats.stream_replicas, ttl=None)
    await ensure_consumers(js, queue)


# JetStream's answer while a cluster is still forming: its meta leader does not yet know every peer.
NO_PEERS_FOR_PLACEMENT = 10005
SETUP_PATIENCE = 60.0  # how long setup waits for a forming cluster (pods started together in k8s)


def cluster_forming(exc: APIError) -> bool:
    """True for the answers a cluster gives while it forms (asked again later), not for a bad config."""
    return isinstance(exc, ServiceUnavailableError) or exc.err_code == NO_PEERS_FOR_PLACEMENT


async def setup_when_ready(
    js: JetStreamContext, nats: NatsSettings, queue: JobQueueSettings, patience: float = SETUP_PATIENCE
) -> None:
    """``setup_jetstream``, asked again while the cluster is still forming (it is idempotent): a
    replicated stream cannot be placed until the meta leader has heard from enough peers."""
    deadline = time.monotonic() + patience
    delay = 0.1
    while True:
        try:
            return await setup_jetstream(js, nats, queue)
        except APIError as exc:
            if not cluster_forming(exc) or time.monotonic() + delay > deadline:
                raise
            log.info("JetStream cluster still forming (%s): setup again in %.1f s", exc.description, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def run_setup(nats: NatsSettings, queue: JobQueueSettings) -> None:
    from .bus import connect

    nc = await connect(nats, "mpr-setup")
    try:
        await setup_when_ready(nc.jetstream(), nats, queue)
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    """``mpr-setup``: create or update MPR's streams, KV bucket and consumers (NATS_URL, NATS_USER=setup, NATS_PASSWORD)."""
    argparse.ArgumentParser(prog="mpr-setup", description=main.__doc__).parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_setup(NatsSettings.from_env(), JobQueueSettings.from_env()))
    log.info("JetStream set up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
