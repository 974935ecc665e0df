"""JetStream streams, created or updated idempotently by every service that needs them."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from . import subjects as s

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    common = dict(
        storage=StorageType.FILE,
        num_replicas=replicas,
        discard=DiscardPolicy.OLD,
        retention=RetentionPolicy.LIMITS,
    )
    return [
        StreamConfig(
            name=s.OBJECTS_STREAM,
            subjects=[s.OBJECT_FOUND, s.OBJECT_REMOVED],
            max_age=7 * DAY,
            duplicate_window=120.0,
            **common,
        ),
        StreamConfig(
            name=s.ASSETS_STREAM,
            subjects=[s.ASSET_REGISTERED],
            max_age=7 * DAY,
            duplicate_window=120.0,
            **common,
        ),
        # One stream for requests and job events: the catalog reads them in order.
        # The duplicate window drops a re-published job_id (Nats-Msg-Id) for an hour.
        StreamConfig(
            name=s.JOBS_STREAM,
            subjects=[s.JOBS_ALL],
            max_age=14 * DAY,
            duplicate_window=3600.0,
            max_bytes=8 * 1024**3,
            **common,
        ),
        StreamConfig(name=s.DLQ_STREAM, subjects=["mpr.dlq.>"], max_age=30 * DAY, **common),
        StreamConfig(name=s.MINIO_STREAM, subjects=[s.MINIO_EVENTS], max_age=7 * DAY, **common),
        StreamConfig(
            name=s.ADVISORIES_STREAM, subjects=[s.MAX_DELIVERIES_ADVISORY], max_age=30 * DAY, **common
        ),
    ]


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    for cfg in stream_configs(replicas):
        try:
            await js.add_stream(cfg)
        except BadRequestError:
            # Exists with a different config: update what may be updated.
            try:
                await js.update_stream(cfg)
            except BadRequestError as exc:  # e.g. replicas cannot change here; keep the existing one
                log.warning("stream %s kept as is: %s", cfg.name, exc)


async def ensure_job_state_kv(js: JetStreamContext, replicas: int = 1):
    try:
        return await js.key_value(s.JOB_STATE_KV)
    except NotFoundError:  # BucketNotFoundError: first start
        return await js.create_key_value(
            KeyValueConfig(
                bucket=s.JOB_STATE_KV, history=1, ttl=14 * DAY, storage=StorageType.FILE, replicas=replicas
            )
        )


async def setup_streams(settings, client_name: str) -> None:
    """Connect once, create or update the streams, disconnect (for services whose own client is
    FastStream's and connects only after start-up hooks)."""
    from .bus import connect

    nc = await connect(settings, client_name)
    try:
        await ensure_streams(nc.jetstream(), settings.stream_replicas)
    finally:
        await nc.close()
