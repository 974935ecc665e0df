"""GraphQL: ``jobLog`` and ``deadLetters`` queries; ``retryJob``, ``retryJobs`` and ``replayDeadLetter``
mutations. Same services, bounds and error codes as REST."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec
import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from mpr_common.errors import NotFound
from mpr_common.events import FAILURE_REASONS, JOB_KINDS
from mpr_common.job_status import RETRYABLE_STATUSES

from ..graphql.context import service
from ..graphql.errors import call as _call
from ..graphql.errors import checked as _checked
from ..http.fields import JobId
from ..http.limits import MAX_PAGE
from . import schemas as rs
from .dead_letters import DeadLetterService
from .service import RetryService


def _retries(info: Info) -> RetryService:
    return service(info, RetryService)


def _dead_letters(info: Info) -> DeadLetterService:
    return service(info, DeadLetterService)


@strawberry.type(description="One attempt at a job, as it ended")
class Attempt:
    retry: int
    attempt: int
    worker: str | None
    started_at: float
    ended_at: float
    duration: float
    outcome: str
    reason: str | None
    error: str | None
    log: str


@strawberry.type(description="Every attempt at a job (all its generations) and its final error")
class JobLog:
    job_id: str
    status: str
    retries: int
    error: str | None
    failure_reason: str | None
    attempts: list[Attempt]

    @classmethod
    def of(cls, log: rs.JobLog) -> JobLog:
        return cls(
            job_id=log.job_id,
            status=log.status,
            retries=log.retries,
            error=log.error,
            failure_reason=log.failure_reason,
            attempts=[Attempt(**msgspec.structs.asdict(a)) for a in log.attempts],
        )


@strawberry.type(description="A job queued again, in its new generation")
class RetriedJob:
    id: str
    status: str
    retries: int
    priority: str


@strawberry.type
class SkippedRetry:
    id: str
    detail: str


@strawberry.type
class RetryResult:
    retried: list[str]
    skipped: list[SkippedRetry]
    matched: int
    more: bool
    dry_run: bool


@strawberry.type(description="How a dead letter was replayed")
class Replay:
    seq: int
    at: float
    by: str
    subject: str
    job_id: str | None
    retry: int | None


@strawberry.type(description="A message given up on (MPR_DLQ)")
class DeadLetter:
    seq: int
    dlq_subject: str
    subject: str
    stream_seq: int | None
    deliveries: int
    error: str
    payload: str
    job_id: str | None
    at: float
    replayable: bool
    replayed: Replay | None


def _enum(name: str, values: tuple[str, ...]) -> Any:
    return strawberry.enum(enum.Enum(name, {v: v for v in values}))  # type: ignore[call-overload]


RetryStatus: Any = _enum("RetryStatus", RETRYABLE_STATUSES)
RetryReason: Any = _enum("RetryReason", FAILURE_REASONS)
RetryKind: Any = _enum("RetryKind", JOB_KINDS)


@strawberry.input(description="Which ended jobs retryJobs runs again")
class RetryFilterInput:
    status: RetryStatus = strawberry.field(default_factory=lambda: RetryStatus.failed)
    reason: RetryReason | None = None
    kind: RetryKind | None = None
    since: float | None = None
    prefix: str | None = None
    limit: int = 100
    dry_run: bool = False


class _Page(msgspec.Struct):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)]
    after: Annotated[int, msgspec.Meta(ge=1)] | None = None


def _replay(r: rs.Replay) -> Replay:
    return Replay(**msgspec.structs.asdict(r))


@strawberry.type
class RetriesQuery:
    @strawberry.field(description="Every attempt at a job: worker, duration, outcome, reason, FFmpeg's log")
    async def job_log(self, info: Info, id: str) -> JobLog | None:
        try:
            log = await _call(_retries(info).log(_checked(id, JobId, "id")))
        except GraphQLError as exc:
            if exc.extensions and exc.extensions.get("code") == NotFound.name:
                return None
            raise
        return JobLog.of(log)

    @strawberry.field(description="Dead letters, newest first (after: continue from a listing's last seq)")
    async def dead_letters(
        self, info: Info, subject: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[DeadLetter]:
        subject = _checked(subject, rs.DlqSubject | None, "subject")
        checked = _checked({"limit": limit, "after": after}, _Page, "page")
        page = await _call(_dead_letters(info).list(subject, checked.limit, checked.after))
        return [
            DeadLetter(
                **{k: v for k, v in msgspec.structs.asdict(d).items() if k != "replayed"},
                replayed=_replay(d.replayed) if d.replayed else None,
            )
            for d in page.items
        ]


@strawberry.type
class RetriesMutation:
    @strawberry.mutation(description="Run a failed or cancelled job again")
    async def retry_job(self, info: Info, id: str) -> RetriedJob:
        job = await _call(_retries(info).retry(_checked(id, JobId, "id"), requested_by="graphql"))
        return RetriedJob(id=job.id, status=job.status, retries=job.retries, priority=job.priority)

    @strawberry.mutation(description="Run again every ended job that matches a filter")
    async def retry_jobs(self, info: Info, filter: RetryFilterInput) -> RetryResult:
        fields = {
            "status": filter.status.value,
            "reason": filter.reason.value if filter.reason else None,
            "kind": filter.kind.value if filter.kind else None,
            "since": filter.since,
            "prefix": filter.prefix,
            "limit": filter.limit,
            "dry_run": filter.dry_run,
        }
        body = _checked(fields, rs.RetryFilter, "filter")  # the bounds of POST /api/retries
        r = await _call(_retries(info).retry_matching(body, requested_by="graphql"))
        return RetryResult(
            retried=r.retried,
            skipped=[SkippedRetry(id=s.id, detail=s.detail) for s in r.skipped],
            matched=r.matched,
            more=r.more,
            dry_run=r.dry_run,
        )

    @strawberry.mutation(description="Publish a dead job request again, once")
    async def replay_dead_letter(self, info: Info, seq: int) -> Replay:
        seq = _checked(seq, Annotated[int, msgspec.Meta(ge=1)], "seq")
        return _replay(await _call(_dead_letters(info).replay(seq, requested_by="graphql")))
