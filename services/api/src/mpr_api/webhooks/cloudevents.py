"""Job and asset events as webhook occurrences, and the CloudEvent (1.0, structured JSON mode) that a
subscription receives for one.

Each occurrence names its fact stably (``fact``): a job's completion is the same fact however often the
stream delivers it, and a cancellation is one fact whether it is read from the cancel request or from
the worker's report of it. A delivery's id, the CloudEvent's ``id`` and the ``webhook-id`` header are
derived from the fact and the subscription, so the same fact can never reach a receiver under two ids."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.events import (
    AssetRegistered,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobPlayable,
    JobRequested,
    JobView,
)
from mpr_common.job_status import failed_status
from mpr_common.jobs import job_identity
from mpr_common.quality import shown

from .model import ENDED_TYPES, EventType, Occurrence

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
TYPE_PREFIX = "io.mpr."
JOB_SOURCE = "/mpr/jobs"
ASSET_SOURCE = "/mpr/assets"
_NOT_SENT = frozenset({"v", "log"})  # FFmpeg's log tail is for the attempts log, not for receivers
_JOB_FIELDS = ("kind", "source_bucket", "source_key", "priority", "parent_id", "template", "rule")

JobEvent = JobRequested | JobPlayable | JobCompleted | JobFailed | JobCancel
# The job as the catalog has it once it has read the stream up to a sequence; None: it has no such job.
JobLookup = Callable[[str, int], Awaitable[JobView | None]]


def read_job_event(subject: str, data: bytes) -> tuple[EventType, JobEvent]:
    """The webhook type of a message of the jobs stream (the consumer's filter passes requests,
    outcomes, a package playable before it completes, and cancels only). Raises msgspec errors for a
    message that does not decode."""
    if subject == s.JOB_PLAYABLE:
        return "job.playable", decode(data, JobPlayable)
    if subject == s.JOB_COMPLETED:
        return "job.completed", decode(data, JobCompleted)
    if subject == s.JOB_FAILED:
        failed = decode(data, JobFailed)
        return ENDED_TYPES[failed_status(failed.reason)], failed
    if subject == s.JOB_CANCEL:
        return "job.cancelled", decode(data, JobCancel)
    return "job.queued", decode(data, JobRequested)  # requested (any queue class), child, dispatched


def _fields(event: Any) -> dict[str, Any]:
    return {k: v for k, v in msgspec.to_builtins(event).items() if k not in _NOT_SENT}


async def job_occurrence(
    type_: EventType, event: JobEvent, msg_id: str | None, seq: int, lookup: JobLookup
) -> Occurrence | None:
    """``None`` when nothing happened for webhooks: a cancel that did not take (the job had ended)."""
    if isinstance(event, JobRequested):
        req = job_identity(event, msg_id, seq)
        return Occurrence(
            type=type_,
            fact=f"{type_}:{req.job_id}:{req.retry}",
            subject=req.job_id,
            source=JOB_SOURCE,
            time=req.requested_at,
            data=_fields(req),
            stream=s.JOBS_STREAM,
            seq=seq,
            kind=req.kind,
            key=req.source_key,
        )
    job = await lookup(event.job_id, seq)  # the kind and source key the outcome does not carry
    if isinstance(event, JobCancel) and (job is None or job.status != "cancelled"):
        return None
    if type_ == "job.cancelled":
        fact = f"{type_}:{event.job_id}:{job.retries if job else 0}"
    else:
        fact = f"{type_}:{msg_id or f'{s.JOBS_STREAM}:{seq}'}"
    known = {f: getattr(job, f) for f in _JOB_FIELDS if job is not None and getattr(job, f) is not None}
    return Occurrence(
        type=type_,
        fact=fact,
        subject=event.job_id,
        source=JOB_SOURCE,
        time=event.at,
        data={**_fields(shown(event) if isinstance(event, JobCompleted) else event), **known},
        stream=s.JOBS_STREAM,
        seq=seq,
        kind=job.kind if job else None,
        key=job.source_key if job else None,
    )


def asset_occurrence(data: bytes, seq: int) -> Occurrence:
    asset = decode(data, AssetRegistered)
    return Occurrence(
        type="asset.registered",
        fact=f"asset.registered:{asset.asset_id}",  # one asset per bucket + key + etag
        subject=asset.key,
        source=ASSET_SOURCE,
        time=asset.at,
        data=_fields(asset),
        stream=s.ASSETS_STREAM,
        seq=seq,
        key=asset.key,
    )


def delivery_id(subscription_id: str, fact: str) -> str:
    return hashlib.sha256(f"{subscription_id}\x00{fact}".encode()).hexdigest()[:32]


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(occ: Occurrence, event_id: str) -> bytes:
    """The structured-mode body (``Content-Type: application/cloudevents+json``)."""
    return encode(
        {
            "specversion": SPEC_VERSION,
            "id": event_id,
            "source": occ.source,
            "type": TYPE_PREFIX + occ.type,
            "subject": occ.subject,
            "time": rfc3339(occ.time),
            "datacontenttype": "application/json",
            "data": occ.data,
        }
    )
