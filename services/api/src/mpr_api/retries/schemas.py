"""Request and response bodies of retries, job logs and dead letters (msgspec: validated by Litestar,
documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from mpr_common.events import FailureReason, JobKind, JobView
from mpr_common.job_status import RetryableStatus

from ..http.fields import KeyPrefix
from ..http.limits import MAX_PAGE

# A dead letter is named by its sequence in MPR_DLQ; a listing is filtered by the subject it was
# dead-lettered on (mpr.dlq.jobs, mpr.dlq.catalog, …).
DLQ_SUBJECT_PATTERN = r"^mpr\.dlq\.[a-z0-9_-]{1,32}$"
DlqSubject = Annotated[str, msgspec.Meta(pattern=DLQ_SUBJECT_PATTERN)]


class RetryFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which ended jobs ``POST /api/jobs/retry`` runs again (a package's children never match: a child
    is retried with its package)."""

    status: RetryableStatus = "failed"
    reason: FailureReason | None = None
    kind: JobKind | None = None
    since: Annotated[float, msgspec.Meta(ge=0)] | None = None  # ended at or after (epoch seconds)
    prefix: KeyPrefix | None = None  # of the source key
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 100
    dry_run: bool = False  # list what would be retried, retry nothing


class RetrySkipped(msgspec.Struct, kw_only=True):
    id: str
    detail: str


class RetriedJobs(msgspec.Struct, kw_only=True):
    retried: list[str]  # ids run again (with dry_run: the ids that would be)
    skipped: list[RetrySkipped] = msgspec.field(default_factory=list)  # matched, not retried, and why
    matched: int = 0
    more: bool = False  # more jobs may match: call again (those retried no longer match)
    dry_run: bool = False


class RetriedJob(msgspec.Struct, kw_only=True):
    job: JobView  # queued again, in its new generation (job.retries)


class AttemptOut(msgspec.Struct, kw_only=True):
    retry: int  # the request generation: 0 the original request, n its n-th retry
    attempt: int  # the delivery within it
    worker: str | None
    started_at: float
    ended_at: float
    duration: float  # seconds
    outcome: str  # completed, failed, retrying (tried again later), handed_back (shutdown), cancelled
    reason: str | None
    error: str | None
    log: str  # FFmpeg's last lines (errors and warnings, redacted)


class JobLog(msgspec.Struct, kw_only=True):
    job_id: str
    status: str
    retries: int
    error: str | None  # the job's final error (also when no attempt ran: an invalid request, a crash)
    failure_reason: str | None
    attempts: list[AttemptOut]


class Replay(msgspec.Struct, kw_only=True):
    """How a dead letter was replayed (kept in the mpr-dlq-replays bucket: the message it holds is
    replayed once, whichever of its letters is replayed)."""

    seq: int
    at: float
    by: str
    subject: str  # where it was published again
    job_id: str | None = None
    retry: int | None = None  # its job's retry, when the letter's job was known (a retry of that job)


class DeadLetterOut(msgspec.Struct, kw_only=True):
    seq: int  # in MPR_DLQ: the id to replay it with
    dlq_subject: str  # who gave up on it: mpr.dlq.jobs (transcoders), mpr.dlq.catalog, mpr.dlq.scanner, …
    subject: str  # where it was published first
    stream_seq: int | None
    deliveries: int
    error: str
    payload: str
    job_id: str | None
    at: float
    replayable: bool  # a job request: POST /api/dead-letters/{seq}/replay publishes it again
    replayed: Replay | None = None


class DeadLetterPage(msgspec.Struct, kw_only=True):
    items: list[DeadLetterOut]  # newest first
    next: int | None = None  # pass as ?after= for the older ones; None: no more
