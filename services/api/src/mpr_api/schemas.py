"""HTTP request and response bodies (msgspec: validated by Litestar, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from mpr_common.events import AssetView, FailureReason, JobKind, JobView, Priority, RefusedObject

from .executors import Executor
from .limits import (
    MAX_BUCKET_CHARS,
    MAX_ERROR_CHARS,
    MAX_ID_CHARS,
    MAX_KEY_CHARS,
    MAX_OUTPUT_KEYS,
    MAX_PRESET_CHARS,
    MAX_WORKER_CHARS,
)

ID_PATTERN = "^[A-Za-z0-9_-]+$"  # job and scan ids
ASSET_ID_PATTERN = "^[0-9a-f]{32}$"
BUCKET_PATTERN = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$"  # S3's bucket naming rules

# Every string of a request body or argument is bounded (limits.py): with MAX_BODY_BYTES, nothing the
# API accepts can make an event larger than NATS's max payload.
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_CHARS)]
KeyPrefix = Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]
JobId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
AssetId = Annotated[str, msgspec.Meta(min_length=32, max_length=32, pattern=ASSET_ID_PATTERN)]
Bucket = Annotated[str, msgspec.Meta(min_length=3, max_length=MAX_BUCKET_CHARS, pattern=BUCKET_PATTERN)]


class ScanBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prefix: KeyPrefix = ""


class ScanResult(msgspec.Struct, kw_only=True):
    """The seed's answer (found, registered, skipped, files), plus what the scan refused and why and
    how many registered assets it no longer found."""

    found: int
    registered: int
    skipped: int
    files: list[str]
    refused: list[RefusedObject] = msgspec.field(default_factory=list)
    removed: int = 0
    scan_id: str = ""


class JobCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: JobKind | None = None  # may come from the template
    source_key: Key
    output_key: Key | None = None
    preset: Annotated[str, msgspec.Meta(max_length=MAX_PRESET_CHARS)] | None = None
    start: Annotated[float, msgspec.Meta(ge=0)] | None = None
    end: Annotated[float, msgspec.Meta(gt=0)] | None = None
    job_id: JobId | None = None
    # EBU R128 two-pass loudness normalisation (audio, transcode and package jobs)
    loudnorm: bool = False
    # package jobs: also a storyboard (sprite sheets, WebVTT thumbnails, poster) in the package's folder
    storyboard: bool = False
    # queue class: urgent jobs go first, bulk ones when there is room (never starved)
    priority: Priority = "normal"
    # a stored job template (name, or name@revision): its fields are the defaults of this request
    template: Annotated[str, msgspec.Meta(max_length=MAX_PRESET_CHARS + 12)] | None = None
    # Who runs it (docs/executors.md); unset: the deployment's API_EXECUTOR. "stepfunctions": the API
    # starts a Step Functions execution of the transcoder Lambda; "lambda": recorded only, the answer
    # carries the job's callback token and the caller runs the Lambda handler.
    executor: Executor | None = None


class JobOut(msgspec.Struct, kw_only=True):
    job: JobView
    output_url: str | None = None
    # Only in the answer that dispatched a job to Lambda: the credential its callbacks must carry.
    callback_token: str | None = None


class JobCallback(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the Lambda handler posts back when it finishes."""

    status: Literal["completed", "failed", "progress"]
    output_key: Key | None = None
    output_bucket: Bucket | None = None
    output_keys: Annotated[list[Key], msgspec.Meta(max_length=MAX_OUTPUT_KEYS)] = msgspec.field(
        default_factory=list
    )
    output_size: Annotated[int, msgspec.Meta(ge=0)] = 0
    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None
    elapsed: Annotated[float, msgspec.Meta(ge=0)] | None = None
    progress: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    error: Annotated[str, msgspec.Meta(max_length=MAX_ERROR_CHARS)] | None = None
    reason: FailureReason | None = None
    worker: Annotated[str, msgspec.Meta(max_length=MAX_WORKER_CHARS)] | None = None


class Page(msgspec.Struct, kw_only=True):
    total: int
    limit: int
    offset: int


class AssetPage(Page):
    items: list[AssetView]


class JobPage(Page):
    items: list[JobOut]


class PresetOut(msgspec.Struct, kw_only=True):
    name: str
    kinds: list[str]
    description: str
    extension: str
    default_for: list[str]


class ErrorBody(msgspec.Struct):
    status_code: int
    detail: str


class JobNotConfirmedBody(msgspec.Struct):
    """A 503 from POST /api/jobs: the queue did not confirm the job, which may still run."""

    status_code: int
    detail: str
    job_id: str  # retry the same request with this job_id: it runs once
