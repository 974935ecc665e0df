"""HTTP request and response bodies (msgspec: validated by Litestar, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from mpr_common.events import AssetView, FailureReason, JobKind, JobView, RefusedObject


class ScanBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prefix: Annotated[str, msgspec.Meta(max_length=1024)] = ""


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
    kind: JobKind
    source_key: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    output_key: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None
    preset: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    start: Annotated[float, msgspec.Meta(ge=0)] | None = None
    end: Annotated[float, msgspec.Meta(gt=0)] | None = None
    job_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")] | None = (
        None
    )


class JobOut(msgspec.Struct, kw_only=True):
    job: JobView
    output_url: str | None = None


class JobCallback(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the Lambda handler posts back when it finishes."""

    status: Literal["completed", "failed", "progress"]
    output_key: str | None = None
    output_bucket: str | None = None
    output_keys: list[str] = msgspec.field(default_factory=list)
    output_size: int = 0
    duration: float | None = None
    elapsed: float | None = None
    progress: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    error: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    reason: FailureReason | None = None
    worker: str | None = None


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
