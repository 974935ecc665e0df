"""Versioned events of MPR's NATS contract.

Rules: every event carries ``v`` (schema version); new fields always get defaults so old
publishers stay valid; decoders are built once (see :mod:`mpr_common.codec`).
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

import msgspec

JobKind = Literal["transcode", "trim", "thumbnail", "audio", "hls"]
JOB_KINDS: tuple[str, ...] = ("transcode", "trim", "thumbnail", "audio", "hls")
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


def now() -> float:
    return time.time()


def new_id() -> str:
    return uuid.uuid4().hex


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    v: int = 1


# --- objects -------------------------------------------------------------------------
class ObjectFound(Event, kw_only=True):
    bucket: str
    key: str
    size: int = 0
    etag: str = ""
    last_modified: float | None = None
    source: Literal["scan", "notification"] = "scan"
    scan_id: str | None = None
    at: float = msgspec.field(default_factory=now)


class ObjectRemoved(Event, kw_only=True):
    bucket: str
    key: str
    source: Literal["scan", "notification"] = "notification"
    at: float = msgspec.field(default_factory=now)


class MediaInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Technical metadata read by ffprobe."""

    format_name: str | None = None
    duration: float | None = None
    bit_rate: int | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    streams: int = 0


class AssetRegistered(Event, kw_only=True):
    asset_id: str
    bucket: str
    key: str
    etag: str
    size: int = 0
    media_type: str | None = None
    info: MediaInfo | None = None
    probe_error: str | None = None
    at: float = msgspec.field(default_factory=now)


# --- jobs ----------------------------------------------------------------------------
class JobRequested(Event, kw_only=True):
    """Published on ``mpr.jobs.requested`` with header ``Nats-Msg-Id: <job_id>``."""

    job_id: str = msgspec.field(default_factory=new_id)
    kind: JobKind
    source_key: str
    output_key: str | None = None
    preset: str | None = None
    start: float | None = None
    end: float | None = None
    source_bucket: str | None = None
    output_bucket: str | None = None
    requested_by: str = "api"
    requested_at: float = msgspec.field(default_factory=now)


class JobProgress(Event, kw_only=True):
    job_id: str
    progress: float  # 0..100
    speed: float | None = None  # x realtime
    out_time: float | None = None  # seconds of output written
    worker: str | None = None
    attempt: int = 1
    at: float = msgspec.field(default_factory=now)


class JobCompleted(Event, kw_only=True):
    job_id: str
    output_key: str
    output_bucket: str
    output_keys: list[str] = msgspec.field(default_factory=list)
    output_size: int = 0
    duration: float | None = None  # seconds of media produced
    elapsed: float | None = None  # wall seconds spent
    worker: str | None = None
    attempt: int = 1
    at: float = msgspec.field(default_factory=now)


class JobFailed(Event, kw_only=True):
    job_id: str
    error: str
    reason: Literal["invalid", "source", "ffmpeg", "storage", "timeout", "internal", "cancelled"] = "ffmpeg"
    worker: str | None = None
    attempt: int = 1
    at: float = msgspec.field(default_factory=now)


class JobCancel(Event, kw_only=True):
    job_id: str
    at: float = msgspec.field(default_factory=now)


class DeadLetter(Event, kw_only=True):
    """A message given up on: the raw payload is kept so nothing is lost."""

    subject: str
    stream_seq: int | None = None
    deliveries: int = 0
    error: str
    payload: str  # the original bytes, decoded as UTF-8 with replacement
    job_id: str | None = None
    at: float = msgspec.field(default_factory=now)


# --- request / reply -------------------------------------------------------------------
class ScanRequest(Event, kw_only=True):
    scan_id: str = msgspec.field(default_factory=new_id)
    prefix: str = ""


class ScanChunk(Event, kw_only=True):
    """Replies to a ScanRequest come in chunks (each well under NATS's max payload); the last has done=True."""

    scan_id: str
    objects: list[ObjectFound] = msgspec.field(default_factory=list)
    done: bool = True
    error: str | None = None


class RegisterRequest(Event, kw_only=True):
    scan_id: str | None = None
    objects: list[ObjectFound] = msgspec.field(default_factory=list)


class RegisterReply(Event, kw_only=True):
    registered: list[str] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


class AssetView(msgspec.Struct, kw_only=True):
    id: str
    bucket: str
    key: str
    etag: str
    size: int
    media_type: str | None
    probe_status: str
    probe_error: str | None
    info: MediaInfo | None
    removed: bool
    created_at: float
    updated_at: float


class JobView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    status: str
    progress: float
    source_key: str
    source_bucket: str | None
    output_key: str | None
    output_bucket: str | None
    output_keys: list[str]
    output_size: int | None
    preset: str | None
    start: float | None
    end: float | None
    error: str | None
    failure_reason: str | None
    speed: float | None
    attempts: int
    worker: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None


class Query(Event, kw_only=True):
    id: str | None = None
    limit: int = 100
    offset: int = 0
    status: str | None = None
    prefix: str | None = None


class QueryReply(Event, kw_only=True):
    asset: AssetView | None = None
    assets: list[AssetView] = msgspec.field(default_factory=list)
    job: JobView | None = None
    jobs: list[JobView] = msgspec.field(default_factory=list)
    total: int = 0
    error: str | None = None
