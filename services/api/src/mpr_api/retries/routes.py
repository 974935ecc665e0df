"""REST: retry one job or all that match a filter, a job's log, dead letters and their replay."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.params import Parameter

from ..http.fields import ID_PATTERN
from ..http.limits import MAX_ID_CHARS, MAX_PAGE
from .dead_letters import DeadLetterService
from .schemas import DLQ_SUBJECT_PATTERN, DeadLetterPage, JobLog, Replay, RetriedJob, RetriedJobs, RetryFilter
from .service import RetryService

JobId = Annotated[str, Parameter(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
Seq = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


class JobRetryController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]

    @post(
        "/{job_id:str}/retry",
        status_code=202,
        summary="Run a failed or cancelled job again",
        description=(
            "The job runs again under the same id as its next generation (`job.retries`): its request as "
            "first recorded, in the queue class it is in now. 409 unless it is failed or cancelled (or a "
            "retry of it is already queued); 409 for a package's child: retry the package, which runs "
            "again the children that did not complete. 503: the queue did not confirm it; calling again "
            "is safe (the same generation runs once)."
        ),
    )
    async def retry_job(self, retries: RetryService, job_id: JobId) -> RetriedJob:
        return RetriedJob(job=await retries.retry(job_id))

    @get(
        "/{job_id:str}/log",
        summary="Every attempt at a job: worker, duration, outcome, reason, error, FFmpeg's log",
        description=(
            "Attempts of every generation (`retry` 0 is the original request), oldest first, and the "
            "job's final error, which also covers failures before any attempt ran (an invalid request, "
            "a worker that died on every delivery)."
        ),
    )
    async def job_log(self, retries: RetryService, job_id: JobId) -> JobLog:
        return await retries.log(job_id)


class RetriesController(Controller):
    path = "/api/retries"
    tags = ["jobs"]

    @post(
        "/",
        status_code=202,
        summary="Run again every ended job that matches a filter",
        description=(
            "Failed (or cancelled) jobs by failure reason, kind, end time (`since`, epoch seconds) and "
            "source key prefix, oldest first, at most `limit`; a package's children never match (they "
            "are retried with their package). `dry_run` lists them without retrying. `more`: call again "
            "for the rest (jobs retried no longer match). Not under /api/jobs/: a job may be named "
            "`retry`."
        ),
    )
    async def retry_jobs(self, retries: RetryService, data: RetryFilter) -> Response[RetriedJobs]:
        result = await retries.retry_matching(data)
        return Response(result, status_code=200 if data.dry_run else 202)


class DeadLetterController(Controller):
    path = "/api/dead-letters"
    tags = ["dead letters"]

    @get(
        "/",
        summary="Messages given up on (MPR_DLQ), newest first",
        description=(
            "Each with its sequence (`seq`: the id to replay it with), the subject it was first published "
            "on, why it was given up on, its payload and whether it was replayed. `subject` keeps the "
            "letters of one DLQ subject (`mpr.dlq.jobs`: transcoders, `mpr.dlq.catalog`, "
            "`mpr.dlq.scanner`, …); `after` continues a listing from its `next`."
        ),
    )
    async def list_dead_letters(
        self,
        dead_letters: DeadLetterService,
        subject: Annotated[str | None, Parameter(pattern=DLQ_SUBJECT_PATTERN)] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
        after: Annotated[int | None, Parameter(ge=1, le=2**63 - 1)] = None,
    ) -> DeadLetterPage:
        return await dead_letters.list(subject, limit, after)

    @post(
        "/{seq:int}/replay",
        status_code=202,
        summary="Publish a dead job request again, once",
        description=(
            "Only job requests are replayed (400 for other letters). A letter whose job the catalog knows "
            "is a retry of that job (409 unless the job is failed or cancelled); other requests are "
            "published again as they were, under a new de-duplication id. 409 for a letter replayed "
            "already."
        ),
    )
    async def replay(self, dead_letters: DeadLetterService, seq: Seq) -> Replay:
        return await dead_letters.replay(seq)
