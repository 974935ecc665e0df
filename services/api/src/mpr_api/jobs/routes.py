from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from mpr_common.events import JobStatus

from ..http.fields import ID_PATTERN
from ..http.limits import MAX_ID_CHARS, MAX_OFFSET, MAX_PAGE
from .schemas import JobCallback, JobCreate, JobNotConfirmedBody, JobOut, JobPage
from .service import JobService

JobId = Annotated[str, Parameter(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]


class JobController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]

    @post(
        "/",
        status_code=202,
        summary="Queue a transcode, trim, thumbnail, audio or HLS job",
        description=(
            "202 once JetStream has stored the job (it is readable at once with GET /api/jobs/{id}); 200 with "
            "the existing job for a job_id already submitted.\n\n"
            "503 means the queue did not confirm storing the job, not that it was not stored: a message "
            "sent while the connection to NATS is down can still be stored, and run, once it is back. "
            "The 503 body therefore carries the `job_id` the job was sent with (yours, or the one "
            "generated for it): retry the same request with that `job_id` and the job runs once: 202 if "
            "it had not been stored, 200 with the stored job if it had. The queue recognises a repeated "
            "`job_id` for an hour (the jobs stream's de-duplication window). Sending a `job_id` of your "
            "own from the start gives the same guarantee."
        ),
        responses={
            503: ResponseSpec(
                JobNotConfirmedBody,
                description="The queue did not confirm the job; retry with the job_id of this body",
            )
        },
    )
    async def create_job(self, jobs: JobService, data: JobCreate) -> Response[JobOut]:
        out, created = await jobs.submit(data)
        return Response(
            out, status_code=202 if created else 200, headers={"Location": f"/api/jobs/{out.job.id}"}
        )

    @get("/", summary="Jobs, newest first")
    async def list_jobs(
        self,
        jobs: JobService,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
        status: JobStatus | None = None,
    ) -> JobPage:
        items, total = await jobs.list(limit, offset, status)
        return JobPage(items=items, total=total, limit=limit, offset=offset)

    @get("/{job_id:str}", summary="Status, progress (0-100), error, output key and presigned URL")
    async def get_job(self, jobs: JobService, job_id: JobId) -> JobOut:
        return await jobs.get(job_id)

    @post("/{job_id:str}/cancel", status_code=202, summary="Cancel a queued or running job")
    async def cancel_job(self, jobs: JobService, job_id: JobId) -> JobOut:
        return await jobs.cancel(job_id)

    @post(
        "/{job_id:str}/callback",
        status_code=200,
        summary="Result report from the Lambda handler",
        description=(
            "Authenticated by the job's own callback token (`Authorization: Bearer <callback_token>`, "
            'issued in the answer to a POST /api/jobs with `"executor": "lambda"`), not by an API token. '
            "The output bucket is S3_BUCKET_OUT."
        ),
    )
    async def callback(self, request: Request, jobs: JobService, job_id: JobId, data: JobCallback) -> JobOut:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return await jobs.callback(job_id, data, token.strip() if scheme.lower() == "bearer" else "")
