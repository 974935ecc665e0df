"""The catalog's request/reply contract: one struct per request, tagged with the subject it is sent on,
and one reply struct per request.

The tag (field ``request``) is the subject, so a request says what it asks for even outside its
subject, and a request sent on the wrong subject is refused (400). It may be left out: the subject
says which request it is, so clients that send no tag are answered as before."""

from __future__ import annotations

from typing import ClassVar, get_args

import msgspec

from . import subjects as s
from .events import (
    AssetView,
    Event,
    FailureReason,
    JobAttempt,
    JobKind,
    JobRequested,
    JobStatus,
    JobView,
    ScanView,
)

MAX_JOB_REQUESTS = 1000  # jobs one FindJobRequests matches at most


# --- replies --------------------------------------------------------------------------------------
class CatalogReply(Event, kw_only=True):
    """What the catalog answers; errors travel as codes in headers (mpr_common.errors), never here."""


class AssetsPage(CatalogReply, kw_only=True):
    assets: list[AssetView] = msgspec.field(default_factory=list)
    total: int = 0  # assets that match, beyond this page


class AssetReply(CatalogReply, kw_only=True):
    asset: AssetView


class JobsPage(CatalogReply, kw_only=True):
    jobs: list[JobView] = msgspec.field(default_factory=list)
    total: int = 0


class JobReply(CatalogReply, kw_only=True):
    job: JobView


class JobLogReply(CatalogReply, kw_only=True):
    job: JobView
    attempts: list[JobAttempt] = msgspec.field(default_factory=list)  # oldest first


class JobRequestsReply(CatalogReply, kw_only=True):
    """Jobs with the request each was recorded with; as many as fit in one NATS message."""

    jobs: list[JobView] = msgspec.field(default_factory=list)
    requests: list[JobRequested] = msgspec.field(default_factory=list)  # what retrying ``jobs`` publishes
    total: int = 0  # matched (``jobs`` may hold fewer)


class ScanReply(CatalogReply, kw_only=True):
    scan: ScanView


# --- requests -------------------------------------------------------------------------------------
class CatalogRequest(Event, kw_only=True, tag_field="request"):
    reply: ClassVar[type[CatalogReply]]


class ListAssets(CatalogRequest, kw_only=True, tag=s.CATALOG_ASSETS_LIST):
    reply = AssetsPage
    limit: int = 100
    offset: int = 0
    prefix: str | None = None
    name: str | None = None  # a part of the key, any case


class GetAsset(CatalogRequest, kw_only=True, tag=s.CATALOG_ASSET_GET):
    reply = AssetReply
    id: str


class ListJobs(CatalogRequest, kw_only=True, tag=s.CATALOG_JOBS_LIST):
    reply = JobsPage
    limit: int = 100
    offset: int = 0
    status: JobStatus | None = None
    # Read-your-writes: answer once the catalog has ingested the jobs stream up to this sequence.
    after_seq: int = 0


class GetJob(CatalogRequest, kw_only=True, tag=s.CATALOG_JOB_GET):
    reply = JobReply
    id: str
    after_seq: int = 0


class GetJobLog(CatalogRequest, kw_only=True, tag=s.CATALOG_JOB_LOG):
    reply = JobLogReply
    id: str
    after_seq: int = 0


class FindJobRequests(CatalogRequest, kw_only=True, tag=s.CATALOG_JOB_REQUESTS):
    """The job named ``id``, or the jobs (never a package's children) matching the filter, oldest first."""

    reply = JobRequestsReply
    id: str | None = None
    limit: int = 100
    status: JobStatus | None = None
    kind: JobKind | None = None
    reason: FailureReason | None = None
    since: float | None = None  # ended at or after
    prefix: str | None = None  # of the source key


class GetScan(CatalogRequest, kw_only=True, tag=s.CATALOG_SCAN_GET):
    reply = ScanReply
    id: str
    # The objects stream's sequence after which the whole scan is stored (the scanner's last chunk).
    after_seq: int = 0


AnyCatalogRequest = ListAssets | GetAsset | ListJobs | GetJob | GetJobLog | FindJobRequests | GetScan

# subject -> the request answered there (the tag of each request is its subject)
REQUEST_TYPES: dict[str, type[CatalogRequest]] = {
    t.__struct_config__.tag: t for t in get_args(AnyCatalogRequest)
}


def subject_of(request: CatalogRequest) -> str:
    """Where ``request`` is sent."""
    tag = type(request).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
