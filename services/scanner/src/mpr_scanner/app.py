"""Wires the scanner: scan requests (replies in chunks), scheduled scans, MinIO notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import connect, dead_letter
from mpr_common.codec import DecodeError, ValidationError, decoder, encode
from mpr_common.errors import BadRequest, MprError, Unavailable, error_headers
from mpr_common.events import ScanChunk, ScanRequest, new_id
from mpr_common.faststream_support import (
    broker_connected,
    make_broker,
    pull_subscriber,
    settle,
)
from mpr_common.ops_server import OpsServer
from mpr_common.runtime import freeze_startup_heap
from mpr_common.s3_client import S3Client
from mpr_common.storage import get_s3_client
from mpr_common.tracing import inject

from .minio_events import translate
from .scan import publish_objects, run_scan
from .settings import ScannerSettings

log = logging.getLogger("mpr.scanner")
_scan_request = decoder(ScanRequest)


@dataclass
class ScannerDeps:
    js: JetStreamContext
    s3: S3Client


async def answer_scan_request(
    broker: NatsBroker,
    settings: ScannerSettings,
    d: ScannerDeps,
    background: set[asyncio.Task],
    msg: NatsMessage,
) -> None:
    """Reply in chunks to the requester's inbox: a large bucket never exceeds NATS's max payload. A scan
    in the background (``reply_files`` false) is kept in ``background`` until it ends."""
    inbox = msg.raw_message.reply
    if not inbox:
        return

    async def reply(chunk: ScanChunk) -> None:
        await broker.publish(encode(chunk), inbox)

    async def fail(exc: MprError) -> None:
        await broker.publish(b"", inbox, headers=error_headers(exc))

    try:
        req = _scan_request.decode(msg.raw_message.data)
    except (DecodeError, ValidationError) as exc:
        await fail(BadRequest(f"bad request: {exc}"))
        return
    scan = run_scan(
        req,
        js=d.js,
        s3=d.s3,
        bucket=settings.s3.bucket_in,
        concurrency=settings.publish_concurrency,
        reply=reply,
    )
    if not req.reply_files:  # in the background: the requester gets the acceptance chunk only
        task = asyncio.create_task(scan)
        background.add(task)
        task.add_done_callback(background.discard)
        return
    try:
        await scan
    except Exception as exc:  # S3 down: the requester gets the reason
        log.exception("scan failed")
        await fail(Unavailable(f"listing {settings.s3.bucket_in} failed: {exc}"))


def register(
    broker: NatsBroker, settings: ScannerSettings, deps: Callable[[], ScannerDeps]
) -> set[asyncio.Task]:
    """Attach the scanner's handlers; ``deps()`` gives the resources made in the lifespan. Returns the
    set that holds background scans (so shutdown can wait for them)."""

    async def dead_letter_minio(raw: Msg, error: str) -> None:
        await dead_letter(deps().js, raw, error, s.DLQ_SCANNER)

    background: set[asyncio.Task] = set()

    @broker.subscriber(s.SCAN_REQUEST, queue="scanner", no_reply=True)
    async def on_scan_request(msg: NatsMessage) -> None:
        await answer_scan_request(broker, settings, deps(), background, msg)

    @pull_subscriber(broker, s.MINIO_EVENTS, s.MINIO_STREAM, s.SCANNER_MINIO_DURABLE)
    async def on_minio_event(msg: NatsMessage) -> None:
        async def work() -> None:
            events = translate(msg.raw_message.data, settings.s3.bucket_in)
            await publish_objects(deps().js, events, settings.publish_concurrency, inject())

        await settle(msg, work, dead_letter_minio)

    return background


def create_app(settings: ScannerSettings) -> FastStream:
    broker = make_broker(settings.nats)
    state: dict[str, ScannerDeps] = {}
    background = register(broker, settings, lambda: state["deps"])

    async def scheduled() -> None:
        while True:
            await asyncio.sleep(settings.interval)
            d = state["deps"]
            try:
                await run_scan(
                    ScanRequest(scan_id=new_id()),
                    js=d.js,
                    s3=d.s3,
                    bucket=settings.s3.bucket_in,
                    concurrency=settings.publish_concurrency,
                )
            except Exception:
                log.exception("scheduled scan failed")

    @asynccontextmanager
    async def lifespan():
        nc = await connect(settings.nats, "mpr-scanner")
        state["deps"] = ScannerDeps(js=nc.jetstream(), s3=get_s3_client(settings.s3))
        task = asyncio.create_task(scheduled()) if settings.interval > 0 else None
        ops = OpsServer(
            settings.metrics_port, lambda: broker_connected(broker) and nc.is_connected, settings.metrics_host
        )
        await ops.start()
        log.info("scanner ready (bucket %s)", settings.s3.bucket_in)
        freeze_startup_heap()
        try:
            yield
        finally:
            await ops.stop()
            for t in [task, *background]:
                if t:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
            await nc.drain()

    return FastStream(broker, lifespan=lifespan)
