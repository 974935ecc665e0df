"""JetStream streams, the job-state KV bucket and every durable consumer, created by one owner.

``mpr-setup`` (run by ``make dev``'s stack, a compose one-shot and a Kubernetes Job) is the only
place that creates or updates them; services bind to what it made and never declare their own."""

from __future__ import annotations

import argparse
import asyncio
import logging
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
from nats.js.errors import BadRequestError, NotFoundError

from . import subjects as s
from .settings import JobQueueSettings, NatsSettings

log = logging.getLogger(__name__)

DAY = 24 * 3600.0
CATALOG_MAX_DELIVER = 10
CATALOG_ACK_WAIT = 30.0
CATALOG_MAX_ACK_PENDING = 20_000  # room for several full batches in flight


JOBS_MAX_BYTES = JobQueueSettings().max_bytes


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
        # refuses new messages (the API answers 503) rather than discarding accepted jobs.
        StreamConfig(
            name=s.JOBS_STREAM,
            subjects=[s.JOBS_ALL],
            max_age=14 * DAY,
            duplicate_window=3600.0,
            max_bytes=jobs_max_bytes,
            **{**common, "discard": DiscardPolicy.NEW},
        ),
        StreamConfig(name=s.DLQ_STREAM, subjects=["mpr.dlq.>"], max_age=30 * DAY, **common),
        StreamConfig(name=s.MINIO_STREAM, subjects=[s.MINIO_EVENTS], max_age=7 * DAY, **common),
        StreamConfig(
            name=s.ADVISORIES_STREAM, subjects=[s.MAX_DELIVERIES_ADVISORY], max_age=30 * DAY, **common
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
        (
            s.JOBS_STREAM,
            pull(
                s.TRANSCODERS_DURABLE,
                [s.JOB_REQUESTED, s.JOB_CHILD],
                ack_wait=queue.ack_wait,
                max_deliver=queue.max_deliver,
                max_ack_pending=10_000,
            ),
        ),
        (s.JOBS_STREAM, pull(s.CATALOG_JOBS_DURABLE, s.JOBS_ALL, max_ack_pending=CATALOG_MAX_ACK_PENDING)),
        (
            s.OBJECTS_STREAM,
            pull(s.CATALOG_OBJECTS_DURABLE, s.OBJECTS_ALL, max_ack_pending=CATALOG_MAX_ACK_PENDING),
        ),
        (s.ADVISORIES_STREAM, pull(s.CATALOG_ADVISORIES_DURABLE, s.MAX_DELIVERIES_ADVISORY)),
        (s.MINIO_STREAM, pull(s.SCANNER_MINIO_DURABLE, s.MINIO_EVENTS)),
    ]


async def ensure_streams(
    js: JetStreamContext, replicas: int = 1, jobs_max_bytes: int = JOBS_MAX_BYTES
) -> None:
    for cfg in stream_configs(replicas, jobs_max_bytes):
        try:
            await js.add_stream(cfg)
        except BadRequestError:
            # Exists with a different config: update what may be updated.
            try:
                await js.update_stream(cfg)
            except BadRequestError as exc:  # e.g. replicas cannot change here; keep the existing one
                log.warning("stream %s kept as is: %s", cfg.name, exc)


async def ensure_kv(
    js: JetStreamContext, bucket: str, replicas: int = 1, ttl: float | None = 14 * DAY
) -> Any:
    try:
        return await js.key_value(bucket)
    except NotFoundError:  # BucketNotFoundError: first start
        return await js.create_key_value(
            KeyValueConfig(bucket=bucket, history=1, ttl=ttl, storage=StorageType.FILE, replicas=replicas)
        )


async def ensure_job_state_kv(js: JetStreamContext, replicas: int = 1) -> Any:
    return await ensure_kv(js, s.JOB_STATE_KV, replicas)


async def first_unfinished_job(js: JetStreamContext, up_to: int) -> int | None:
    """The stream sequence of the oldest job request whose job has not ended (no entry in the job-state
    KV), or None when every stored job has ended. Read by the setup owner when it has to re-create the
    transcoders' consumer, so that history is not delivered again."""
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

    found = [seq for seq in [await first(s.JOB_REQUESTED), await first(s.JOB_CHILD)] if seq is not None]
    return min(found) if found else None


async def ensure_consumers(js: JetStreamContext, queue: JobQueueSettings) -> None:
    for stream, cfg in consumer_configs(queue):
        if cfg.durable_name == s.TRANSCODERS_DURABLE:
            cfg = await _resume_point(js, cfg)
        try:  # creates, or updates what may be updated (ack_wait, max_deliver, …)
            await js.add_consumer(stream, cfg)
        except BadRequestError as exc:  # e.g. a changed filter subject: keep the existing one
            log.warning("consumer %s kept as is: %s", cfg.durable_name, exc)


async def _resume_point(js: JetStreamContext, cfg: ConsumerConfig) -> ConsumerConfig:
    """A missing transcoders' consumer over a stream that holds jobs (it was deleted, or lost) starts at
    the oldest job that has not ended, not at the stream's beginning: ended jobs are not delivered again
    (those after it are skipped by the transcoders, which read the same job-state KV)."""
    try:
        await js.consumer_info(s.JOBS_STREAM, s.TRANSCODERS_DURABLE)
        return cfg  # exists: updating keeps its position
    except NotFoundError:
        pass
    # Taken first: whatever is published while we look has a later sequence and is delivered.
    last = (await js.stream_info(s.JOBS_STREAM)).state.last_seq
    start = await first_unfinished_job(js, last) or last + 1
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
    await ensure_consumers(js, queue)


async def run_setup(nats: NatsSettings, queue: JobQueueSettings) -> None:
    from .bus import connect

    nc = await connect(nats, "mpr-setup")
    try:
        await setup_jetstream(nc.jetstream(), nats, queue)
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
