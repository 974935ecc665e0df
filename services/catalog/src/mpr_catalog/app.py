"""Wires the catalog: resources made once in the lifespan, handlers from :mod:`mpr_catalog.handlers`."""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import asynccontextmanager
from typing import Any

from faststream import FastStream
from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import BatchConsumer, connect, publish_event
from mpr_common.events import AssetRegistered, MediaInfo
from mpr_common.faststream_support import make_broker
from mpr_common.jobstate import JobState
from mpr_common.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING
from mpr_common.ops_server import OpsServer
from mpr_common.runtime import freeze_startup_heap
from mpr_common.storage import get_s3_client
from mpr_common.streams import retire_requests_forever

from .batches import handle_job_events, handle_objects
from .db import Database, make_engine
from .deps import CatalogDeps, ConsumerBarrier
from .ingest import Ingestor, ProbeResult
from .metrics import CATALOG_ASSETS, CATALOG_JOBS
from .migrate import upgrade_async
from .prober import Prober
from .repository import Catalog
from .router import catalog_router
from .settings import CatalogSettings

log = logging.getLogger("mpr.catalog")


CONSUMERS = ((s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE), (s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE))


async def refresh_gauges(catalog: Catalog, js: JetStreamContext, every: float = 10.0) -> None:
    while True:
        try:
            for state, count in (await catalog.count_jobs_by_status()).items():
                CATALOG_JOBS.labels(state).set(count)
            CATALOG_ASSETS.set((await catalog.list_assets(1, 0))[1])
            for stream, durable in CONSUMERS:  # how far behind the streams the catalog is
                info = await js.consumer_info(stream, durable)
                CONSUMER_PENDING.labels(stream, durable).set(info.num_pending or 0)
                CONSUMER_ACK_PENDING.labels(stream, durable).set(info.num_ack_pending or 0)
        except Exception:
            log.exception("metrics refresh failed")
        await asyncio.sleep(every)


def asset_registered(row: Any, info: MediaInfo | None, error: str | None) -> AssetRegistered:
    return AssetRegistered(
        asset_id=row.id,
        bucket=row.bucket,
        key=row.key,
        etag=row.etag,
        size=row.size,
        media_type=row.media_type,
        info=info,
        probe_error=error,
    )


async def record_probes(ingestor: Ingestor, js: JetStreamContext, results: list[ProbeResult]) -> None:
    """A batch of probes: recorded in one transaction, then published, one subject per object
    (transcoders read the latest probe with a direct get). The acks are awaited together: a batch
    costs one round trip, not one per object."""
    recorded = await ingestor.probe_results(results)
    outcomes = await asyncio.gather(
        *(
            publish_event(
                js,
                s.asset_subject(row.bucket, row.key),
                asset_registered(row, r.info, r.error),
                msg_id=f"asset-{row.id}",
            )
            for row, r in recorded
        ),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:  # recorded in the database; transcoders probe those sources themselves
        log.warning("%d of %d probe events not published: %r", len(failed), len(outcomes), failed[0])


def create_app(settings: CatalogSettings) -> FastStream:
    broker = make_broker(settings.nats)
    state: dict[str, CatalogDeps] = {}
    broker.include_router(catalog_router(lambda: state["deps"], settings.nats.inbox_prefix()))

    @asynccontextmanager
    async def lifespan():
        engine = make_engine(settings.database_url)
        if settings.migrate:
            await upgrade_async(engine, settings.database_url)
        db = Database(engine)
        catalog = Catalog(db)
        nc = await connect(settings.nats, "mpr-catalog")
        js = nc.jetstream()

        ingestor = Ingestor(db)
        prober = Prober(
            get_s3_client(settings.s3),
            None,
            settings.probe_concurrency,
            settings.probe_timeout,
            refill=catalog.pending_probes,
            nice=settings.probe_nice,
            busy=ingestor.registering,
            on_batch=functools.partial(record_probes, ingestor, js),
        )
        log.info("probing %d objects at once", prober.concurrency)
        deps = state["deps"] = CatalogDeps(
            catalog=catalog,
            ingestor=ingestor,
            submit_probe=prober.submit,
            barrier=ConsumerBarrier(js),
            js=js,
            bucket_in=settings.s3.bucket_in,
            job_state=JobState(await js.key_value(s.JOB_STATE_KV)),
        )
        consumers = [
            BatchConsumer(js, s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE, lambda m: handle_job_events(deps, m)),
            BatchConsumer(js, s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE, lambda m: handle_objects(deps, m)),
        ]
        for c in consumers:
            c.start()
        prober.start()
        for asset in await catalog.pending_probes(prober.max_queued + 1):  # one more: refill the rest later
            prober.submit(asset)
        ops = OpsServer(settings.metrics_port, lambda: nc.is_connected, settings.metrics_host)
        await ops.start()
        gauges = asyncio.create_task(refresh_gauges(catalog, js))
        retirer = asyncio.create_task(retire_requests_forever(js))  # requests of ended jobs
        log.info("catalog ready (%s)", engine.dialect.name)
        freeze_startup_heap()
        try:
            yield
        finally:
            gauges.cancel()
            retirer.cancel()
            for c in consumers:
                await c.stop()
            await ops.stop()
            await prober.stop()
            await nc.drain()
            await engine.dispose()

    return FastStream(broker, lifespan=lifespan)
