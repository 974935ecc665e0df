"""Wires the catalog: FastStream subscribers over NATS, thin handlers calling :class:`Catalog`."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
from faststream import FastStream
from faststream.nats import NatsMessage
from nats.aio.client import Client

from mpr_common import subjects as s
from mpr_common.bus import connect
from mpr_common.codec import DecodeError, ValidationError, decode, decoder, encode
from mpr_common.events import (
    AssetRegistered,
    DeadLetter,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    MediaInfo,
    ObjectFound,
    ObjectRemoved,
    Query,
    QueryReply,
    RegisterReply,
    RegisterRequest,
)
from mpr_common.faststream_support import dead_letter_publisher, durable_subscriber, make_broker, settle
from mpr_common.jobs import TERMINAL
from mpr_common.metrics import CATALOG_ASSETS, CATALOG_EVENTS, CATALOG_JOBS
from mpr_common.ops_server import OpsServer
from mpr_common.storage import get_s3_client
from mpr_common.streams import ensure_streams

from .db import make_engine
from .migrate import upgrade_async
from .models import Asset
from .prober import Prober
from .repository import Catalog, asset_view, job_view
from .settings import CatalogSettings

log = logging.getLogger("mpr.catalog")


# subject -> (event type, Catalog method recording it)
_JOB_EVENT_HANDLERS: dict[str, tuple[type, str]] = {
    s.JOB_REQUESTED: (JobRequested, "record_requested"),
    s.JOB_PROGRESS: (JobProgress, "record_progress"),
    s.JOB_COMPLETED: (JobCompleted, "record_completed"),
    s.JOB_FAILED: (JobFailed, "record_failed"),
    s.JOB_CANCEL: (JobCancel, "record_cancel"),
}
MAX_DELIVER = 10


@dataclass
class Resources:
    catalog: Catalog
    prober: Prober
    nc: Client


class MaxDeliveriesAdvisory(msgspec.Struct):
    """JetStream's ``io.nats.jetstream.advisory.v1.max_deliver`` (the fields we use)."""

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0


def create_app(settings: CatalogSettings) -> FastStream:
    broker = make_broker(settings.nats)
    res: dict[str, Resources] = {}

    def r() -> Resources:
        return res["r"]

    publish_dead_letter = dead_letter_publisher(broker, s.DLQ_CATALOG)

    async def on_probed(asset: Asset, info: MediaInfo | None, error: str | None) -> None:
        updated = await r().catalog.set_probe_result(asset.id, info, error)
        if updated is None:
            return
        await broker.publish(
            encode(
                AssetRegistered(
                    asset_id=updated.id,
                    bucket=updated.bucket,
                    key=updated.key,
                    etag=updated.etag,
                    size=updated.size,
                    media_type=updated.media_type,
                    info=info,
                    probe_error=error,
                )
            ),
            s.ASSET_REGISTERED,
            stream=s.ASSETS_STREAM,
            headers={"Nats-Msg-Id": f"asset-{updated.id}"},
        )

    # --- JetStream consumers --------------------------------------------------------------
    @durable_subscriber(broker, s.OBJECTS_ALL, s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE, MAX_DELIVER)
    async def on_object(msg: NatsMessage) -> None:
        raw = msg.raw_message

        async def work() -> None:
            if raw.subject == s.OBJECT_FOUND:
                asset, created = await r().catalog.register(decode(raw.data, ObjectFound))
                if created or asset.probe_status == "pending":
                    r().prober.submit(asset)
            elif raw.subject == s.OBJECT_REMOVED:
                await r().catalog.remove(decode(raw.data, ObjectRemoved))

        await settle(msg, work, publish_dead_letter)

    @durable_subscriber(broker, s.JOBS_ALL, s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE, MAX_DELIVER)
    async def on_job_event(msg: NatsMessage) -> None:
        raw = msg.raw_message
        CATALOG_EVENTS.labels(raw.subject).inc()
        handler = _JOB_EVENT_HANDLERS.get(raw.subject)
        if handler is None:
            await msg.ack()
            return
        type_, method = handler

        async def work() -> None:
            await getattr(r().catalog, method)(decode(raw.data, type_))

        await settle(msg, work, publish_dead_letter)

    @durable_subscriber(
        broker, s.MAX_DELIVERIES_ADVISORY, s.ADVISORIES_STREAM, s.CATALOG_ADVISORIES_DURABLE, MAX_DELIVER
    )
    async def on_max_deliveries(msg: NatsMessage) -> None:
        """A job whose worker died on every delivery (kill -9, OOM): fail it and keep a dead letter."""

        async def work() -> None:
            adv = decode(msg.raw_message.data, MaxDeliveriesAdvisory)
            original = await r().nc.jetstream().get_msg(adv.stream, adv.stream_seq)
            job_id = decode(original.data, JobRequested).job_id
            job = await r().catalog.get_job(job_id)
            if job is not None and job.status in TERMINAL:
                return
            error = (
                f"gave up after {adv.deliveries} deliveries: the transcoder handling it stopped "
                "(crashed or killed) before finishing each time"
            )
            letter = DeadLetter(
                subject=s.JOB_REQUESTED,
                stream_seq=adv.stream_seq,
                deliveries=adv.deliveries,
                error=error,
                payload=original.data.decode("utf-8", "replace"),
                job_id=job_id,
            )
            await broker.publish(
                encode(letter),
                s.DLQ_JOBS,
                stream=s.DLQ_STREAM,
                headers={"Nats-Msg-Id": f"dlq-{adv.stream_seq}"},
            )
            await broker.publish(
                encode(JobFailed(job_id=job_id, error=error, reason="internal", attempt=adv.deliveries)),
                s.JOB_FAILED,
                stream=s.JOBS_STREAM,
                headers={"Nats-Msg-Id": f"failed-{job_id}"},
            )

        await settle(msg, work, publish_dead_letter)

    # --- request / reply ----
    def answers(handler):
        """A request handler always replies: with its result, or with the reason it failed."""

        async def wrapped(msg: NatsMessage) -> bytes:
            try:
                return await handler(msg)
            except (DecodeError, ValidationError) as exc:
                return encode({"error": f"bad request: {exc}"})
            except Exception as exc:
                log.exception("request on %s failed", msg.raw_message.subject)
                return encode({"error": f"catalog error: {type(exc).__name__}"})

        wrapped.__name__ = handler.__name__
        return wrapped

    register_decoder = decoder(RegisterRequest)
    query_decoder = decoder(Query)

    @broker.subscriber(s.CATALOG_REGISTER, queue="catalog")
    @answers
    async def on_register(msg: NatsMessage) -> bytes:
        req = register_decoder.decode(msg.raw_message.data)
        created, registered, skipped = await r().catalog.register_batch(req.objects, req.scan_id)
        for asset in created:
            r().prober.submit(asset)
        return encode(RegisterReply(registered=registered, skipped=skipped))

    @broker.subscriber(s.CATALOG_ASSETS_LIST, queue="catalog")
    @answers
    async def on_assets_list(msg: NatsMessage) -> bytes:
        q = query_decoder.decode(msg.raw_message.data)
        assets, total = await r().catalog.list_assets(q.limit, q.offset, q.prefix)
        return encode(QueryReply(assets=[asset_view(a) for a in assets], total=total))

    @broker.subscriber(s.CATALOG_ASSET_GET, queue="catalog")
    @answers
    async def on_asset_get(msg: NatsMessage) -> bytes:
        q = query_decoder.decode(msg.raw_message.data)
        asset = await r().catalog.get_asset(q.id or "")
        return encode(QueryReply(asset=asset_view(asset) if asset else None, total=int(asset is not None)))

    @broker.subscriber(s.CATALOG_JOBS_LIST, queue="catalog")
    @answers
    async def on_jobs_list(msg: NatsMessage) -> bytes:
        q = query_decoder.decode(msg.raw_message.data)
        jobs, total = await r().catalog.list_jobs(q.limit, q.offset, q.status)
        return encode(QueryReply(jobs=[job_view(j) for j in jobs], total=total))

    @broker.subscriber(s.CATALOG_JOB_GET, queue="catalog")
    @answers
    async def on_job_get(msg: NatsMessage) -> bytes:
        q = query_decoder.decode(msg.raw_message.data)
        job = await r().catalog.get_job(q.id or "")
        return encode(QueryReply(job=job_view(job) if job else None, total=int(job is not None)))

    @broker.subscriber(s.CATALOG_JOB_RECORD, queue="catalog")
    @answers
    async def on_job_record(msg: NatsMessage) -> bytes:
        job = await r().catalog.record_requested(decode(msg.raw_message.data, JobRequested))
        return encode(QueryReply(job=job_view(job), total=1))

    async def refresh_gauges(catalog: Catalog, every: float = 10.0) -> None:
        while True:
            try:
                for state, count in (await catalog.count_jobs_by_status()).items():
                    CATALOG_JOBS.labels(state).set(count)
                CATALOG_ASSETS.set((await catalog.list_assets(1, 0))[1])
            except Exception:
                log.exception("metrics refresh failed")
            await asyncio.sleep(every)

    @asynccontextmanager
    async def lifespan():
        engine = make_engine(settings.database_url)
        if settings.migrate:
            await upgrade_async(engine, settings.database_url)
        s3 = get_s3_client(settings.s3)
        catalog = Catalog(engine)
        prober = Prober(s3, on_probed, settings.probe_concurrency, settings.probe_timeout)
        nc = await connect(settings.nats, "mpr-catalog")
        await ensure_streams(nc.jetstream(), settings.nats.stream_replicas)
        res["r"] = Resources(catalog=catalog, prober=prober, nc=nc)
        prober.start()
        for asset in await catalog.pending_probes():
            prober.submit(asset)
        ops = OpsServer(settings.metrics_port, lambda: nc.is_connected)
        await ops.start()
        gauges = asyncio.create_task(refresh_gauges(catalog))
        log.info("catalog ready (%s)", engine.dialect.name)
        try:
            yield
        finally:
            gauges.cancel()
            await ops.stop()
            await prober.stop()
            await nc.drain()
            await engine.dispose()

    return FastStream(broker, lifespan=lifespan)
