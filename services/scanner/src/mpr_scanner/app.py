"""Wires the scanner: scan requests (request/reply), scheduled scans, MinIO notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

from faststream import FastStream
from faststream.nats import NatsMessage

from mpr_common import subjects as s
from mpr_common.codec import DecodeError, ValidationError, decoder, encode
from mpr_common.events import ObjectFound, ObjectRemoved, ScanChunk, ScanRequest, new_id
from mpr_common.faststream_support import (
    broker_connected,
    dead_letter_publisher,
    durable_subscriber,
    make_broker,
    settle,
)
from mpr_common.keys import InvalidKeyError
from mpr_common.metrics import OBJECTS_EMITTED, SCAN_SECONDS
from mpr_common.ops_server import OpsServer
from mpr_common.storage import get_s3_client, list_objects
from mpr_common.streams import setup_streams

from .minio_events import translate
from .settings import ScannerSettings

log = logging.getLogger("mpr.scanner")


def object_msg_id(ev: ObjectFound | ObjectRemoved) -> str:
    if isinstance(ev, ObjectFound):
        return f"found:{ev.bucket}/{ev.key}@{ev.etag}"
    return f"removed:{ev.bucket}/{ev.key}@{ev.at}"


SCAN_CHUNK = 500  # objects per reply message (~100 KB)


def create_app(settings: ScannerSettings) -> FastStream:
    broker = make_broker(settings.nats)
    dead_letter = dead_letter_publisher(broker, s.DLQ_SCANNER)
    state: dict[str, object] = {}
    scan_decoder = decoder(ScanRequest)

    async def emit(events: list[ObjectFound | ObjectRemoved]) -> None:
        """Publish to JetStream, waiting for every ack; bounded concurrency."""
        sem = asyncio.Semaphore(settings.publish_concurrency)

        async def one(ev: ObjectFound | ObjectRemoved) -> None:
            async with sem:
                subject = s.OBJECT_FOUND if isinstance(ev, ObjectFound) else s.OBJECT_REMOVED
                await broker.publish(
                    encode(ev), subject, stream=s.OBJECTS_STREAM, headers={"Nats-Msg-Id": object_msg_id(ev)}
                )
                OBJECTS_EMITTED.labels(ev.source, "found" if subject == s.OBJECT_FOUND else "removed").inc()

        await asyncio.gather(*(one(ev) for ev in events))

    async def scan(req: ScanRequest) -> list[ObjectFound]:
        client = state["s3"]

        def listing() -> list[ObjectFound]:
            return [
                ObjectFound(
                    bucket=o.bucket,
                    key=o.key,
                    size=o.size,
                    etag=o.etag,
                    last_modified=o.last_modified.timestamp() if o.last_modified else None,
                    source="scan",
                    scan_id=req.scan_id,
                )
                for o in list_objects(settings.s3.bucket_in, req.prefix, client=client)
            ]

        with SCAN_SECONDS.time():
            found = await asyncio.to_thread(listing)
            await emit(found)
        log.info("scan %s: %d media objects under %r", req.scan_id, len(found), req.prefix)
        return found

    @broker.subscriber(s.SCAN_REQUEST, queue="scanner", no_reply=True)
    async def on_scan_request(msg: NatsMessage) -> None:
        """Reply in chunks to the requester's inbox: a large bucket never exceeds NATS's max payload."""
        reply = msg.raw_message.reply
        if not reply:
            return

        async def send(chunk: ScanChunk) -> None:
            await broker.publish(encode(chunk), reply)

        try:
            req = scan_decoder.decode(msg.raw_message.data)
        except (DecodeError, ValidationError) as exc:
            await send(ScanChunk(scan_id="", error=f"bad request: {exc}"))
            return
        try:
            found = await scan(req)
        except InvalidKeyError as exc:
            await send(ScanChunk(scan_id=req.scan_id, error=str(exc)))
            return
        except Exception as exc:  # S3 down: the caller gets the reason
            log.exception("scan failed")
            await send(ScanChunk(scan_id=req.scan_id, error=f"listing {settings.s3.bucket_in} failed: {exc}"))
            return
        for i in range(0, max(len(found), 1), SCAN_CHUNK):
            part = found[i : i + SCAN_CHUNK]
            await send(ScanChunk(scan_id=req.scan_id, objects=part, done=i + SCAN_CHUNK >= len(found)))

    @durable_subscriber(broker, s.MINIO_EVENTS, s.MINIO_STREAM, s.SCANNER_MINIO_DURABLE)
    async def on_minio_event(msg: NatsMessage) -> None:
        async def work() -> None:
            await emit(translate(msg.raw_message.data, settings.s3.bucket_in))

        await settle(msg, work, dead_letter)

    async def scheduled() -> None:
        while True:
            await asyncio.sleep(settings.interval)
            try:
                await scan(ScanRequest(scan_id=new_id()))
            except Exception:
                log.exception("scheduled scan failed")

    @asynccontextmanager
    async def lifespan():
        state["s3"] = get_s3_client(settings.s3)
        await setup_streams(settings.nats, "mpr-scanner-setup")
        task = asyncio.create_task(scheduled()) if settings.interval > 0 else None
        ops = OpsServer(settings.metrics_port, lambda: broker_connected(broker))
        await ops.start()
        log.info("scanner ready (bucket %s)", settings.s3.bucket_in)
        try:
            yield
        finally:
            await ops.stop()
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return FastStream(broker, lifespan=lifespan)
