"""The live event stream's model (``GET /api/events`` and the ``jobEvents`` subscription), all pure:
event types, the resumable cursor, filters, the mapping from MPR's NATS events to stream events, and
the Server-Sent Events framing. Reading the streams is ``event_hub.py``'s work.

A cursor is the pair of stream sequences (MPR_JOBS, MPR_ASSETS) a client has been given events up to:
the two streams are read independently, so resuming continues each right after its own sequence, exact
whichever order the two were interleaved in (by this API replica or another)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

import msgspec

from mpr_common import subjects as s
from mpr_common.events import (
    JOB_KINDS,
    JOB_STATUSES,
    AssetRegistered,
    JobCompleted,
    JobFailed,
    JobPlayable,
    JobProgress,
    JobRequested,
    JobStatus,
    MediaInfo,
)
from mpr_common.job_status import TERMINAL_STATUSES, failed_status

from ..http.limits import MAX_ID_CHARS
from .eta import Observation, eta

# --- event types ----------------------------------------------------------------------------------
EventType = Literal[
    "job.queued",
    "job.progress",
    "job.playable",
    "job.completed",
    "job.failed",
    "job.cancelled",
    "asset.registered",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
JOB_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t.startswith("job."))
# The status each job event says its job is now in: queued, running on progress (and when a package
# can be played before it completes), else how it ended.
JOB_EVENT_STATUS: dict[str, JobStatus] = {
    "job.queued": "queued",
    "job.progress": "running",
    "job.playable": "running",
    **{f"job.{st}": st for st in sorted(TERMINAL_STATUSES, key=JOB_STATUSES.index)},
}
assert set(JOB_EVENT_STATUS) == set(JOB_EVENT_TYPES), "every job event type says a status"
ASSET_REGISTERED: str = "asset.registered"
RESET = "reset"  # not a filterable type: the cursor named events that the streams no longer keep

StreamKey = Literal["jobs", "assets"]
STREAM_KEYS: tuple[StreamKey, ...] = ("jobs", "assets")
STREAM_NAMES: dict[StreamKey, str] = {"jobs": s.JOBS_STREAM, "assets": s.ASSETS_STREAM}
STREAM_FILTERS: dict[StreamKey, str] = {"jobs": s.JOBS_ALL, "assets": s.ASSETS_REGISTERED_ALL}

MAX_FILTER_VALUES = 100  # job ids (or kinds) one stream may filter on


# --- cursor -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cursor:
    """The last stream sequence given to a client in each stream (0: none)."""

    jobs: int = 0
    assets: int = 0

    def __getitem__(self, key: StreamKey) -> int:
        return self.jobs if key == "jobs" else self.assets

    def advanced(self, key: StreamKey, seq: int) -> Cursor:
        """This cursor once the message ``seq`` of stream ``key`` has been read (never moves back)."""
        return self if seq <= self[key] else self.moved(key, seq)

    def moved(self, key: StreamKey, seq: int) -> Cursor:
        """This cursor with stream ``key`` at ``seq``, back or forth (a cursor the streams cannot serve)."""
        return Cursor(seq, self.assets) if key == "jobs" else Cursor(self.jobs, seq)


_CURSOR = re.compile(r"1\.(\d{1,19})\.(\d{1,19})")
_MAX_SEQ = 2**64 - 1


def encode_cursor(cursor: Cursor) -> str:
    """Opaque to clients (``id:`` of each event); versioned so that its form may change."""
    return f"1.{cursor.jobs}.{cursor.assets}"


def decode_cursor(text: str) -> Cursor:
    """Raises ValueError for anything :func:`encode_cursor` did not make."""
    m = _CURSOR.fullmatch(text.strip())
    if m is None:
        raise ValueError("not a cursor of this event stream (give an event's id as Last-Event-ID)")
    jobs, assets = int(m[1]), int(m[2])
    if jobs > _MAX_SEQ or assets > _MAX_SEQ:
        raise ValueError("cursor out of range")
    return Cursor(jobs, assets)


# --- stream events --------------------------------------------------------------------------------
class JobEventData(msgspec.Struct, kw_only=True):
    """``data`` of a job event; fields that do not apply to its type are null (never left out).
    ``output_key``: the request's output (queued), the output written (completed), the master
    playlist (playable)."""

    job_id: str
    kind: str | None
    status: str
    progress: float | None = None
    speed: float | None = None
    eta: float | None = None  # seconds, null when unknown
    worker: str | None = None
    attempt: int | None = None
    parent_id: str | None = None
    error: str | None = None
    reason: str | None = None
    output_key: str | None = None
    output_bucket: str | None = None
    at: float


class AssetEventData(msgspec.Struct, kw_only=True):
    asset_id: str
    bucket: str
    key: str
    etag: str
    media_type: str | None = None
    info: MediaInfo | None = None
    probe_error: str | None = None
    at: float


class ResetData(msgspec.Struct, kw_only=True):
    reason: str
    at: float


EventData = JobEventData | AssetEventData | ResetData
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as every client receives it; ``json`` is encoded once, however many clients get it."""

    type: str
    stream: StreamKey
    seq: int
    data: EventData
    json: bytes

    @classmethod
    def of(cls, type_: str, stream: StreamKey, seq: int, data: EventData) -> StreamEvent:
        return cls(type_, stream, seq, data, _encoder.encode(data))


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What a job's later events do not repeat: its kind and, for a package's child, its package."""

    kind: str | None
    parent_id: str | None = None


RequestSubject = Literal["requested", "progress", "playable", "completed", "failed"]


def job_subject(subject: str) -> RequestSubject | None:
    """Which job event a subject of the jobs stream carries (None: not one the stream shows: attempts,
    cancel requests, retries and moves are followed by the events that are)."""
    if subject in (s.JOB_REQUESTED, s.JOB_CHILD, s.JOB_DISPATCHED) or subject.startswith(
        (s.JOB_REQUESTED + ".", s.JOB_CHILD + ".")
    ):
        return "requested"
    if subject == s.JOB_PROGRESS:
        return "progress"
    if subject == s.JOB_PLAYABLE:
        return "playable"
    if subject == s.JOB_COMPLETED:
        return "completed"
    if subject == s.JOB_FAILED:
        return "failed"
    return None


def queued_event(req: JobRequested, seq: int) -> StreamEvent:
    data = JobEventData(
        job_id=req.job_id,
        kind=req.kind,
        status="queued",
        progress=0.0,
        parent_id=req.parent_id,
        output_key=req.output_key,
        output_bucket=req.output_bucket,
        at=req.requested_at,
    )
    return StreamEvent.of("job.queued", "jobs", seq, data)


def progress_event(
    p: JobProgress, seq: int, facts: JobFacts | None, first: Observation | None
) -> StreamEvent:
    """``first``: the earliest progress seen of the same attempt, which the ETA is measured from."""
    data = JobEventData(
        job_id=p.job_id,
        kind=facts.kind if facts else None,
        status="running",
        progress=p.progress,
        speed=p.speed,
        eta=eta(p.progress, p.at, first=first, speed=p.speed, out_time=p.out_time),
        worker=p.worker,
        attempt=p.attempt,
        parent_id=facts.parent_id if facts else None,
        at=p.at,
    )
    return StreamEvent.of("job.progress", "jobs", seq, data)


def playable_event(p: JobPlayable, seq: int, facts: JobFacts | None) -> StreamEvent:
    """A package that can be played before it completes: ``output_key`` is its master playlist (the
    job's ``playable_url`` links it)."""
    data = JobEventData(
        job_id=p.job_id,
        kind=facts.kind if facts else None,
        status="running",
        parent_id=facts.parent_id if facts else None,
        output_key=p.output_key,
        output_bucket=p.output_bucket,
        at=p.at,
    )
    return StreamEvent.of("job.playable", "jobs", seq, data)


def completed_event(c: JobCompleted, seq: int, facts: JobFacts | None) -> StreamEvent:
    data = JobEventData(
        job_id=c.job_id,
        kind=facts.kind if facts else None,
        status="completed",
        progress=100.0,
        eta=0.0,
        worker=c.worker,
        attempt=c.attempt,
        parent_id=facts.parent_id if facts else None,
        output_key=c.output_key,
        output_bucket=c.output_bucket,
        at=c.at,
    )
    return StreamEvent.of("job.completed", "jobs", seq, data)


def failed_event(f: JobFailed, seq: int, facts: JobFacts | None) -> StreamEvent:
    """A failure whose reason is "cancelled" is the job's cancellation."""
    status = failed_status(f.reason)
    data = JobEventData(
        job_id=f.job_id,
        kind=facts.kind if facts else None,
        status=status,
        worker=f.worker,
        attempt=f.attempt,
        parent_id=facts.parent_id if facts else None,
        error=f.error,
        reason=f.reason,
        at=f.at,
    )
    return StreamEvent.of(f"job.{status}", "jobs", seq, data)


def asset_event(a: AssetRegistered, seq: int) -> StreamEvent:
    data = AssetEventData(
        asset_id=a.asset_id,
        bucket=a.bucket,
        key=a.key,
        etag=a.etag,
        media_type=a.media_type,
        info=a.info,
        probe_error=a.probe_error,
        at=a.at,
    )
    return StreamEvent.of(ASSET_REGISTERED, "assets", seq, data)


def reset_event(at: float) -> StreamEvent:
    """Given first to a client whose cursor the streams cannot serve (its stream and seq are unused)."""
    data = ResetData(reason="events after the given cursor are no longer kept; some were lost", at=at)
    return StreamEvent.of(RESET, "jobs", 0, data)


# --- filters --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EventFilter:
    """Empty ``job_ids``/``kinds``: any. A package's id also matches its children's events."""

    types: frozenset[str] = frozenset(EVENT_TYPES)
    job_ids: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()

    def matches(self, event: StreamEvent) -> bool:
        if event.type not in self.types:
            return False
        data = event.data
        if not isinstance(data, JobEventData):
            return not self.job_ids and not self.kinds  # asset events have neither
        if self.job_ids and data.job_id not in self.job_ids and data.parent_id not in self.job_ids:
            return False
        return not self.kinds or data.kind in self.kinds

    def wants(self, stream: StreamKey) -> bool:
        """Whether any event of ``stream`` can match (a stream that cannot is not read for it)."""
        if stream == "assets":
            return ASSET_REGISTERED in self.types and not self.job_ids and not self.kinds
        return any(t in self.types for t in JOB_EVENT_TYPES)


def parse_filter(
    job_ids: list[str] | None = None,
    kinds: list[str] | None = None,
    types: list[str] | None = None,
    allowed_types: tuple[str, ...] = EVENT_TYPES,
) -> EventFilter:
    """The filter of a request's ``job_id``, ``kind`` and ``types`` (each optional, all combined).
    Raises ValueError naming what is wrong."""
    chosen = [t.strip() for t in types if t.strip()] if types is not None else list(allowed_types)
    unknown = sorted({t for t in chosen if t not in allowed_types})
    if unknown:
        raise ValueError(f"unknown event type {', '.join(unknown)}: types are {', '.join(allowed_types)}")
    if not chosen:
        raise ValueError(f"types names none of {', '.join(allowed_types)}")
    ids = [j for j in job_ids or [] if j]
    wanted_kinds = [k for k in kinds or [] if k]
    bad_kinds = sorted({k for k in wanted_kinds if k not in JOB_KINDS})
    if bad_kinds:
        raise ValueError(f"unknown job kind {', '.join(bad_kinds)}: kinds are {', '.join(JOB_KINDS)}")
    if len(ids) > MAX_FILTER_VALUES or len(wanted_kinds) > MAX_FILTER_VALUES:
        raise ValueError(f"at most {MAX_FILTER_VALUES} job ids and kinds may be given")
    if any(len(j) > MAX_ID_CHARS for j in ids):
        raise ValueError(f"a job id has at most {MAX_ID_CHARS} characters")
    return EventFilter(frozenset(chosen), frozenset(ids), frozenset(wanted_kinds))


def split_types(value: str | None) -> list[str] | None:
    """``types=job.progress,job.completed`` as a list (None: not given)."""
    return None if value is None else value.split(",")


# --- Server-Sent Events -----------------------------------------------------------------------------
KEEP_ALIVE = b": keep-alive\n\n"


def sse_frame(cursor: str, event: StreamEvent) -> bytes:
    """One event: ``id`` (the cursor to resume after it), ``event`` (its type), ``data`` (one line of
    JSON: msgspec escapes every control character, so the JSON holds no line break)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (cursor.encode(), event.type.encode(), event.json)


def sse_retry(milliseconds: int) -> bytes:
    """How long an EventSource waits before it reconnects (sent first)."""
    return b"retry: %d\n\n" % milliseconds
