"""The catalog's NATS handlers: thin, importable, and testable in process with ``TestNatsBroker``.

Streams arrive in batches (one transaction per batch, acks after the commit); queries are answered
over request/reply with errors as codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.msg import Msg

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, dead_letter, publish_event, settle_batch
from mpr_common.codec import DecodeError, ValidationError, decode, decoder, encode
from mpr_common.errors import NotFound
from mpr_common.events import (
    PRIORITIES,
    AssetRegistered,
    DeadLetter,
    JobAttempt,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobMoved,
    JobProgress,
    JobRequested,
    JobRetried,
    MediaInfo,
    ObjectFound,
    ObjectRemoved,
    Query,
    QueryReply,
    ScanStatus,
)
from mpr_common.faststream_support import answers, pull_subscriber, settle
from mpr_common.jobs import CHILD_ONLY, TERMINAL, JobRequestError, job_identity, normalize_job, outcome_id
from mpr_common.jobstate import JobState
from mpr_common.keys import InvalidKeyError, validate_key

from .ingest import Ingestor, NewAsset, ObjectEvent
from .job_events import JobEvent
from .metrics import BATCH_SIZE, CATALOG_EVENTS
from .repository import Catalog

log = logging.getLogger("mpr.catalog")
MAX_REQUESTS = 1000  # jobs one mpr.catalog.jobs.requests query matches at most
MAX_REPLY_BYTES = 800_000  # of them, as many as fit under NATS's max payload (1 MB) are answered

# Requests and children of every queue class (the subject is the class).
_CHILD_SUBJECTS = frozenset(s.child_subject(p) for p in PRIORITIES)
_JOB_TYPES: dict[str, type] = {
    **{s.requested_subject(p): JobRequested for p in PRIORITIES},
    **dict.fromkeys(_CHILD_SUBJECTS, JobRequested),
    s.JOB_DISPATCHED: JobRequested,
    s.JOB_PROGRESS: JobProgress,
    s.JOB_COMPLETED: JobCompleted,
    s.JOB_FAILED: JobFailed,
    s.JOB_CANCEL: JobCancel,
    s.JOB_ATTEMPT: JobAttempt,
    s.JOB_RETRIED: JobRetried,
    s.JOB_MOVED: JobMoved,
}
_OBJECT_TYPES: dict[str, type] = {
    s.OBJECT_FOUND: ObjectFound,
    s.OBJECT_REMOVED: ObjectRemoved,
    s.SCAN_STATUS: ScanStatus,
}
_query = decoder(Query)


class Barrier(Protocol):
    """Read-your-writes: wait until the catalog has ingested a stream up to a sequence."""

    async def wait(self, stream: str, durable: str, seq: int | None, timeout: float) -> bool: ...


class ConsumerBarrier:
    """Asks JetStream for the consumer's ack floor (shared by every catalog replica)."""

    def __init__(self, js: Any, poll: float = 0.02) -> None:
        self.js = js
        self.poll = poll

    async def wait(self, stream: str, durable: str, seq: int | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            if seq is None:  # everything stored so far
                seq = (await self.js.stream_info(stream)).state.last_seq
            while True:
                info = await self.js.consumer_info(stream, durable)
                if info.ack_floor.stream_seq >= (seq or 0):
                    return True
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(self.poll)
        return False


class MaxDeliveriesAdvisory(msgspec.Struct):
    """JetStream's ``io.nats.jetstream.advisory.v1.max_deliver`` (the fields we use)."""

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0


@dataclass
class CatalogDeps:
    catalog: Catalog
    ingestor: Ingestor
    submit_probe: Callable[[NewAsset], None]
    barrier: Barrier
    js: Any  # JetStream context: the advisory handler reads the original request
    bucket_in: str = "mpr-media-in"  # object events name it, or are dead-lettered
    job_state: JobState | None = None  # where a job failed for good is marked, so it never runs again
    read_wait: float = 2.0
    scan_wait: float = 110.0  # under the API's scan timeout


def _stream_seq(raw: Msg) -> int:
    try:
        return raw.metadata.sequence.stream
    except Exception:  # not a JetStream delivery (in-process tests)
        return 0


def decode_job_event(raw: Msg) -> JobEvent | JobAttempt:
    ev: JobEvent | JobAttempt = decode(raw.data, _JOB_TYPES[raw.subject])
    if isinstance(ev, JobRequested):
        if (ev.parent_id is not None) != (raw.subject in _CHILD_SUBJECTS):
            raise ValidationError(CHILD_ONLY)
        ev = job_identity(ev, (raw.headers or {}).get(MSG_ID), _stream_seq(raw))
        # Record what the transcoder will run (default preset, output key); an invalid request is
        # kept as sent and ends failed with the transcoder's reason.
        with contextlib.suppress(JobRequestError):
            ev = normalize_job(ev)
    return ev


async def _dead_letter(js: Any, raw: Msg, error: str) -> None:
    await dead_letter(js, raw, error, s.DLQ_CATALOG)


async def _decode_batch(
    js: Any,
    raws: list[Msg],
    types: dict[str, type],
    decode_one: Callable[[Msg], Any],
    bucket: str | None = None,
) -> list:
    """Decoded events; undecodable ones, and with ``bucket`` those naming another bucket, are
    dead-lettered (nothing outside S3_BUCKET_IN is ever registered)."""
    events = []
    for raw in raws:
        if raw.subject not in types:
            continue
        try:
            event = decode_one(raw)
        except (DecodeError, ValidationError, InvalidKeyError) as exc:
            await _dead_letter(js, raw, f"undecodable: {exc}")
            continue
        if bucket is not None and event.bucket != bucket:
            await _dead_letter(js, raw, f"bucket {event.bucket!r} is not the one MPR scans ({bucket!r})")
            continue
        events.append(event)
    return events


async def handle_job_events(d: CatalogDeps, raws: list[Msg]) -> None:
    """A batch from the jobs stream: one transaction, then the acks."""

    BATCH_SIZE.labels(s.JOBS_STREAM).observe(len(raws))

    async def work() -> None:
        events = await _decode_batch(d.js, raws, _JOB_TYPES, decode_job_event)
        events = await confirmed_generations(d, events)
        await d.ingestor.jobs(events)
        for raw in raws:
            CATALOG_EVENTS.labels(raw.subject).inc()

    await settle_batch(raws, work)


# Events that carry the request generation they belong to (``retry``) and can start it in the row.
_GENERATION_EVENTS = (JobRequested, JobProgress, JobCompleted, JobFailed, JobCancel)


async def kv_confirms(state: JobState, job_id: str, retry: int) -> bool:
    """Whether the job-state KV says generation ``retry`` (> 0) has started: the API's retry path marks
    it (``retried``) before it publishes the request, and the run of that generation keeps it (its
    lease, its completion). A request of a generation nobody started reads as not confirmed."""
    entry = await state.read(job_id)
    if isinstance(entry.state, JobCompleted):
        return (entry.state.retry or 0) >= retry
    return entry.state is None and entry.generation >= retry


async def confirmed_generations(d: CatalogDeps, events: list) -> list:
    """Only the API's retry path raises a job's generation. Anyone allowed to publish a job request can
    set its ``retry``, and a transcoder answers a request for an ended job with its outcome again, under
    the request's generation: an event of a generation newer than the job's row is kept only when the
    retry that started it is known (a ``JobRetried``, which only the API publishes, or the job-state
    KV). Anything else would rewrite a finished job's record (``retries: 7``, back to queued)."""
    if d.job_state is None:
        return events
    known: dict[str, int] = {}  # job id → a generation known to have started
    for ev in events:
        if isinstance(ev, JobRetried):
            known[ev.job_id] = max(known.get(ev.job_id, 0), ev.retry)
    kept = []
    for ev in events:
        retry = getattr(ev, "retry", None) if isinstance(ev, _GENERATION_EVENTS) else None
        if retry and retry > known.get(ev.job_id, 0):
            row = await d.catalog.get_job(ev.job_id)
            known[ev.job_id] = max(known.get(ev.job_id, 0), row.retries if row is not None else 0)
            if retry > known[ev.job_id]:
                if not await kv_confirms(d.job_state, ev.job_id, retry):
                    log.warning(
                        "%s of generation %d ignored: no retry started it",
                        type(ev).__name__,
                        retry,
                        extra={"job_id": ev.job_id},
                    )
                    continue
                known[ev.job_id] = retry
        kept.append(ev)
    return kept


async def handle_objects(d: CatalogDeps, raws: list[Msg]) -> None:
    """A batch from the objects stream (found, removed, scan status), in stream order."""
    BATCH_SIZE.labels(s.OBJECTS_STREAM).observe(len(raws))

    async def work() -> None:
        events: list[ObjectEvent] = await _decode_batch(
            d.js, raws, _OBJECT_TYPES, decode_object_event, bucket=d.bucket_in
        )
        if any(isinstance(e, ScanStatus) and e.state == "completed" for e in events):
            # Another replica may still hold earlier objects of this scan: let it commit first.
            await d.barrier.wait(s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE, _stream_seq(raws[0]) - 1, 10)
        result = await d.ingestor.objects(events)
        for asset in result.created:
            d.submit_probe(asset)

    await settle_batch(raws, work)


def decode_object_event(raw: Msg) -> ObjectEvent:
    ev: ObjectEvent = decode(raw.data, _OBJECT_TYPES[raw.subject])
    if not isinstance(ev, ScanStatus):
        validate_key(ev.key)  # a forged event with an unsafe key is dead-lettered as undecodable
    return ev


def register(broker: NatsBroker, deps: Callable[[], CatalogDeps]) -> None:
    """Attach the catalog's FastStream handlers (advisories, queries) to ``broker``; ``deps()`` gives
    the resources made in the lifespan. The streams' batches go through :func:`handle_job_events`
    and :func:`handle_objects`."""

    async def dead_letter_one(raw: Msg, error: str) -> None:
        await _dead_letter(deps().js, raw, error)

    @pull_subscriber(broker, s.MAX_DELIVERIES_ADVISORIES, s.ADVISORIES_STREAM, s.CATALOG_ADVISORIES_DURABLE)
    async def on_max_deliveries(msg: NatsMessage) -> None:
        """A job whose worker died on every delivery (kill -9, OOM): fail it and keep a dead letter."""

        async def work() -> None:
            d = deps()
            adv = decode(msg.raw_message.data, MaxDeliveriesAdvisory)
            original = await d.js.get_msg(adv.stream, adv.stream_seq)
            req = job_identity(
                decode(original.data, JobRequested), (original.headers or {}).get(MSG_ID), adv.stream_seq
            )
            job = await d.catalog.get_job(req.job_id)
            if job is not None and job.status in TERMINAL:
                return
            error = (
                f"gave up after {adv.deliveries} deliveries: the transcoder handling it stopped "
                "(crashed or killed) before finishing each time"
            )
            letter = DeadLetter(
                subject=original.subject or s.JOB_REQUESTED,
                stream_seq=adv.stream_seq,
                deliveries=adv.deliveries,
                error=error,
                payload=original.data.decode("utf-8", "replace"),
                job_id=req.job_id,
            )
            await publish_event(d.js, s.DLQ_JOBS, letter, msg_id=f"dlq-{s.JOB_REQUESTED}-{adv.stream_seq}")
            if d.job_state is not None:
                await d.job_state.failed(req.job_id)
            failed = JobFailed(
                job_id=req.job_id, error=error, reason="internal", attempt=adv.deliveries, retry=req.retry
            )
            await publish_event(
                d.js, s.JOB_FAILED, failed, msg_id=outcome_id("failed", req.job_id, req.retry)
            )
            if req.parent_id is not None and original.subject in _CHILD_SUBJECTS and d.job_state is not None:
                # Its package can never complete: it fails too (children still running finish unused).
                if await d.job_state.get(req.parent_id) is None:
                    await d.job_state.failed(req.parent_id)
                    # A child runs in its package's generation (the transcoders give it the package's retry).
                    parent = JobFailed(
                        job_id=req.parent_id,
                        error=f"{req.rendition or req.kind} ({req.job_id}) failed: {error}",
                        reason="internal",
                        attempt=adv.deliveries,
                        retry=req.retry,
                    )
                    await publish_event(
                        d.js, s.JOB_FAILED, parent, msg_id=outcome_id("failed", req.parent_id, req.retry)
                    )

        await settle(msg, work, dead_letter_one)

    # --- queries -------------------------------------------------------------------------------
    @broker.subscriber(s.CATALOG_ASSETS_LIST, queue="catalog")
    @answers
    async def on_assets_list(msg: NatsMessage) -> bytes:
        q = _query.decode(msg.raw_message.data)
        assets, total = await deps().catalog.list_assets(q.limit, q.offset, q.prefix, name=q.name)
        return encode(QueryReply(assets=assets, total=total))

    @broker.subscriber(s.CATALOG_ASSET_GET, queue="catalog")
    @answers
    async def on_asset_get(msg: NatsMessage) -> bytes:
        q = _query.decode(msg.raw_message.data)
        asset = await deps().catalog.get_asset(q.id or "")
        if asset is None:
            raise NotFound(f"asset {q.id} not found")
        return encode(QueryReply(asset=asset, total=1))

    @broker.subscriber(s.CATALOG_JOBS_LIST, queue="catalog")
    @answers
    async def on_jobs_list(msg: NatsMessage) -> bytes:
        q = _query.decode(msg.raw_message.data)
        d = deps()
        if q.after_seq:
            await d.barrier.wait(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE, q.after_seq, d.read_wait)
        jobs, total = await d.catalog.list_jobs(q.limit, q.offset, q.status)
        return encode(QueryReply(jobs=jobs, total=total))

    @broker.subscriber(s.CATALOG_JOB_GET, queue="catalog")
    @answers
    async def on_job_get(msg: NatsMessage) -> bytes:
        """A job JetStream has stored but this catalog has not ingested yet is waited for, briefly:
        what the API acknowledged is readable at once, without a second write path."""
        q = _query.decode(msg.raw_message.data)
        d = deps()
        job = None if q.after_seq else await d.catalog.get_job(q.id or "")
        if job is None:  # not ingested yet, or asked for as of a write (after_seq): wait that far
            await d.barrier.wait(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE, q.after_seq or None, d.read_wait)
            job = await d.catalog.get_job(q.id or "")
        if job is None:
            raise NotFound(f"job {q.id} not found")
        return encode(QueryReply(job=job, total=1))

    @broker.subscriber(s.CATALOG_JOB_LOG, queue="catalog")
    @answers
    async def on_job_log(msg: NatsMessage) -> bytes:
        """A job and its attempts (the API's GET /api/jobs/{id}/log)."""
        q = _query.decode(msg.raw_message.data)
        d = deps()
        if q.after_seq:
            await d.barrier.wait(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE, q.after_seq, d.read_wait)
        found = await d.catalog.job_log(q.id or "")
        if found is None:
            raise NotFound(f"job {q.id} not found")
        job, attempts = found
        return encode(QueryReply(job=job, attempts=attempts, total=len(attempts)))

    @broker.subscriber(s.CATALOG_JOB_REQUESTS, queue="catalog")
    @answers
    async def on_job_requests(msg: NatsMessage) -> bytes:
        """Jobs to retry, by id or by filter, with the requests a retry publishes again."""
        q = _query.decode(msg.raw_message.data)
        found = await deps().catalog.job_requests(
            limit=max(1, min(q.limit, MAX_REQUESTS)),
            job_id=q.id,
            status=q.status,
            kind=q.kind,
            reason=q.reason,
            since=q.since,
            prefix=q.prefix,
        )
        if q.id is not None and not found:
            raise NotFound(f"job {q.id} not found")
        reply = QueryReply(total=len(found))  # total: matched; jobs: as many as one answer holds
        room = MAX_REPLY_BYTES
        for job, req in found:
            job = msgspec.structs.replace(job, output_keys=[], children=[])  # lists a retry does not need
            size = len(encode(job)) + len(encode(req))
            if size > room:
                break
            room -= size
            reply.jobs.append(job)
            reply.requests.append(req)
        return encode(reply)

    @broker.subscriber(s.CATALOG_SCAN_GET, queue="catalog")
    @answers
    async def on_scan_get(msg: NatsMessage) -> bytes:
        q = _query.decode(msg.raw_message.data)
        d = deps()
        if q.after_seq:  # a whole scan may still be on its way in: wait as long as the requester does
            await d.barrier.wait(s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE, q.after_seq, d.scan_wait)
        scan = await d.catalog.get_scan(q.id or "")
        if scan is None:  # started a moment ago
            await d.barrier.wait(s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE, None, d.read_wait)
            scan = await d.catalog.get_scan(q.id or "")
        if scan is None:
            raise NotFound(f"scan {q.id} not found")
        return encode(QueryReply(scan=scan, total=1))


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
