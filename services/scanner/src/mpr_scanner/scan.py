"""One scan, pipelined page by page: S3 lists the next page while this one is published to JetStream
and its keys are sent to the requester. Memory holds a couple of pages, whatever the bucket's size."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence

from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.events import ObjectFound, ObjectRemoved, RefusedObject, ScanChunk, ScanRequest, ScanStatus
from mpr_common.s3_client import S3Client
from mpr_common.storage import ListedPage, list_pages
from mpr_common.tracing import inject

from .metrics import OBJECTS_EMITTED, SCAN_SECONDS

log = logging.getLogger("mpr.scanner")

MAX_REFUSED_LISTED = 1000  # refused keys carried in events and replies; the count is always exact
STATUS_EVERY_PAGES = 10
Reply = Callable[[ScanChunk], Awaitable[None]]


def object_msg_id(ev: ObjectFound | ObjectRemoved) -> str:
    """De-duplication id: a retried publish is dropped, a later scan's sighting is not (it is what
    tells the catalog the object is still there)."""
    if isinstance(ev, ObjectFound):
        return f"found:{ev.scan_id or 'notified'}:{ev.bucket}/{ev.key}@{ev.etag}"
    return f"removed:{ev.bucket}/{ev.key}@{ev.at}"


async def publish_objects(
    js: JetStreamContext,
    events: Sequence[ObjectFound | ObjectRemoved],
    concurrency: int,
    headers: dict[str, str],
) -> int:
    """Publish with every ack awaited (a slow ack is retried, never a failed scan); returns the last
    stream sequence."""
    sem = asyncio.Semaphore(concurrency)
    last = 0

    async def one(ev: ObjectFound | ObjectRemoved) -> None:
        nonlocal last
        async with sem:
            found = isinstance(ev, ObjectFound)
            ack = await publish_event(
                js,
                s.OBJECT_FOUND if found else s.OBJECT_REMOVED,
                ev,
                msg_id=object_msg_id(ev),
                headers=headers,
                propagate=False,
            )
            last = max(last, ack.seq)
            OBJECTS_EMITTED.labels(ev.source, "found" if found else "removed").inc()

    await asyncio.gather(*(one(ev) for ev in events))
    return last


def _produce_pages(
    bucket: str,
    prefix: str,
    client: S3Client,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[ListedPage | BaseException | None],
    stop: threading.Event,
) -> None:
    """In a thread: each page into ``queue``, then None (or the error), until ``stop`` is set."""

    def put(item: ListedPage | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    try:
        pages: Iterator[ListedPage] = list_pages(bucket, prefix, client=client)
        for page in pages:
            if stop.is_set():
                return
            put(page)
        put(None)
    except BaseException as exc:  # handed to the consumer, which raises it
        if not stop.is_set():
            put(exc)


async def _pages(bucket: str, prefix: str, client: S3Client, ahead: int = 2):
    """The blocking boto3 paginator in a thread, at most ``ahead`` pages ahead of the consumer."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[ListedPage | BaseException | None] = asyncio.Queue(ahead)
    stop = threading.Event()
    worker = loop.run_in_executor(None, _produce_pages, bucket, prefix, client, loop, queue, stop)
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(worker), 5)


async def run_scan(
    req: ScanRequest,
    *,
    js: JetStreamContext,
    s3: S3Client,
    bucket: str,
    concurrency: int,
    reply: Reply | None = None,
) -> ScanStatus:
    """List ``bucket`` under the request's prefix, publish each media object, then the scan's end.

    ``reply`` (a requester's inbox) gets the keys page by page when ``req.reply_files``, else one
    acceptance chunk at once; its last chunk carries the stream sequence of the scan's end."""
    headers = inject()  # one trace context for the whole scan, not one per object
    status = ScanStatus(scan_id=req.scan_id, bucket=bucket, prefix=req.prefix)
    ack = await publish_event(js, s.SCAN_STATUS, status, msg_id=f"scan-{req.scan_id}-start", headers=headers)
    if reply is not None and not req.reply_files:
        await reply(ScanChunk(scan_id=req.scan_id, done=True, last_seq=ack.seq))
        reply = None
    pages = 0
    with SCAN_SECONDS.time():
        try:
            async for page in _pages(bucket, req.prefix, s3):
                events = [
                    ObjectFound(
                        bucket=o.bucket,
                        key=o.key,
                        size=o.size,
                        etag=o.etag,
                        last_modified=o.last_modified.timestamp() if o.last_modified else None,
                        source="scan",
                        scan_id=req.scan_id,
                    )
                    for o in page.objects
                ]
                await publish_objects(js, events, concurrency, headers)
                refused = [RefusedObject(key=k, reason=r) for k, r in page.refused]
                status.found += len(events)
                status.refused_count += len(refused)
                room = MAX_REFUSED_LISTED - len(status.refused)
                status.refused += refused[: max(0, room)]
                if reply is not None:
                    await reply(
                        ScanChunk(
                            scan_id=req.scan_id,
                            keys=[o.key for o in page.objects],
                            refused=refused,
                            done=False,
                        )
                    )
                pages += 1
                if pages % STATUS_EVERY_PAGES == 0:
                    await publish_event(
                        js, s.SCAN_STATUS, status, msg_id=f"scan-{req.scan_id}-{pages}", headers=headers
                    )
        except Exception as exc:
            status.state, status.error = "failed", f"listing {bucket} failed: {exc}"
            await publish_event(js, s.SCAN_STATUS, status, msg_id=f"scan-{req.scan_id}-end", headers=headers)
            raise
    status.state = "completed"
    ack = await publish_event(js, s.SCAN_STATUS, status, msg_id=f"scan-{req.scan_id}-end", headers=headers)
    if reply is not None:
        await reply(ScanChunk(scan_id=req.scan_id, done=True, last_seq=ack.seq))
    log.info("scan %s: %d media objects under %r", req.scan_id, status.found, req.prefix)
    return status
