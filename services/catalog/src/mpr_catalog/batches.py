"""The catalog's stream handlers: batches from the jobs and objects streams, one transaction per batch,
acks after the commit. Undecodable events are dead-lettered; the rest are recorded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, settle_batch
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.events import (
    PRIORITIES,
    JobAttempt,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobMoved,
    JobPlayable,
    JobProgress,
    JobRequested,
    JobRetried,
    ObjectFound,
    ObjectRemoved,
    ScanStatus,
)
from mpr_common.jobs import CHILD_ONLY, JobRequestError, job_identity, normalize_job
from mpr_common.jobstate import JobState
from mpr_common.keys import InvalidKeyError, validate_key

from .deps import CatalogDeps, stream_seq
from .ingest import ObjectEvent
from .job_events import JobEvent
from .metrics import BATCH_SIZE, CATALOG_EVENTS

log = logging.getLogger("mpr.catalog")

# Requests and children of every queue class (the subject is the class).
CHILD_SUBJECTS = frozenset(s.child_subject(p) for p in PRIORITIES)
_JOB_TYPES: dict[str, type] = {
    **{s.requested_subject(p): JobRequested for p in PRIORITIES},
    **dict.fromkeys(CHILD_SUBJECTS, JobRequested),
    s.JOB_DISPATCHED: JobRequested,
    s.JOB_PROGRESS: JobProgress,
    s.JOB_COMPLETED: JobCompleted,
    s.JOB_PLAYABLE: JobPlayable,
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


def decode_job_event(raw: Msg) -> JobEvent | JobAttempt:
    ev: JobEvent | JobAttempt = decode(raw.data, _JOB_TYPES[raw.subject])
    if isinstance(ev, JobRequested):
        if (ev.parent_id is not None) != (raw.subject in CHILD_SUBJECTS):
            raise ValidationError(CHILD_ONLY)
        ev = job_identity(ev, (raw.headers or {}).get(MSG_ID), stream_seq(raw))
        # Record what the transcoder will run (default preset, output key); an invalid request is
        # kept as sent and ends failed with the transcoder's reason.
        with contextlib.suppress(JobRequestError):
            ev = normalize_job(ev)
    return ev


def decode_object_event(raw: Msg) -> ObjectEvent:
    ev: ObjectEvent = decode(raw.data, _OBJECT_TYPES[raw.subject])
    if not isinstance(ev, ScanStatus):
        validate_key(ev.key)  # a forged event with an unsafe key is dead-lettered as undecodable
    return ev


async def _decode_batch(
    d: CatalogDeps,
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
            await d.dead_letter(raw, f"undecodable: {exc}")
            continue
        if bucket is not None and event.bucket != bucket:
            await d.dead_letter(raw, f"bucket {event.bucket!r} is not the one MPR scans ({bucket!r})")
            continue
        events.append(event)
    return events


async def handle_job_events(d: CatalogDeps, raws: list[Msg]) -> None:
    """A batch from the jobs stream: one transaction, then the acks."""

    BATCH_SIZE.labels(s.JOBS_STREAM).observe(len(raws))

    async def work() -> None:
        events = await _decode_batch(d, raws, _JOB_TYPES, decode_job_event)
        events = await confirmed_generations(d, events)
        await d.ingestor.jobs(events)
        for raw in raws:
            CATALOG_EVENTS.labels(raw.subject).inc()

    await settle_batch(raws, work)


async def handle_objects(d: CatalogDeps, raws: list[Msg]) -> None:
    """A batch from the objects stream (found, removed, scan status), in stream order."""
    BATCH_SIZE.labels(s.OBJECTS_STREAM).observe(len(raws))

    async def work() -> None:
        events: list[ObjectEvent] = await _decode_batch(
            d, raws, _OBJECT_TYPES, decode_object_event, bucket=d.bucket_in
        )
        if any(isinstance(e, ScanStatus) and e.state == "completed" for e in events):
            # Another replica may still hold earlier objects of this scan: let it commit first.
            await d.wait_for_objects(stream_seq(raws[0]) - 1, timeout=10)
        result = await d.ingestor.objects(events)
        for asset in result.created:
            d.submit_probe(asset)

    await settle_batch(raws, work)


# Events that carry the request generation they belong to (``retry``) and can start it in the row.
_GENERATION_EVENTS = (JobRequested, JobProgress, JobCompleted, JobPlayable, JobFailed, JobCancel)


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
    # job id → a generation known to have started
    known = {ev.job_id: ev.retry for ev in sorted(_retried(events), key=lambda e: e.retry)}
    kept = []
    for ev in events:
        if await _generation_started(d, d.job_state, known, ev):
            kept.append(ev)
        else:
            log.warning(
                "%s of generation %d ignored: no retry started it",
                type(ev).__name__,
                ev.retry,
                extra={"job_id": ev.job_id},
            )
    return kept


def _retried(events: list) -> list[JobRetried]:
    return [ev for ev in events if isinstance(ev, JobRetried)]


async def _generation_started(d: CatalogDeps, state: JobState, known: dict[str, int], ev: Any) -> bool:
    """Whether ``ev``'s generation is one known to have started (``known`` learns what is looked up)."""
    retry = getattr(ev, "retry", None) if isinstance(ev, _GENERATION_EVENTS) else None
    if not retry or retry <= known.get(ev.job_id, 0):
        return True
    row = await d.catalog.get_job(ev.job_id)
    known[ev.job_id] = max(known.get(ev.job_id, 0), row.retries if row is not None else 0)
    if retry <= known[ev.job_id]:
        return True
    if not await kv_confirms(state, ev.job_id, retry):
        return False
    known[ev.job_id] = retry
    return True
