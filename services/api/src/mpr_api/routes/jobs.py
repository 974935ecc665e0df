from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Response, get, post
from litestar.params import Parameter

from ..backend import Backend
from ..schemas import JobCallback, JobCreate, JobOut, JobPage

JobId = Annotated[str, Parameter(max_length=64, pattern="^[A-Za-z0-9_-]+$")]


class JobController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]

    @post("/", status_code=202, summary="Queue a transcode, trim, thumbnail, audio or HLS job")
    async def create_job(self, backend: Backend, data: JobCreate) -> Response[JobOut]:
        out, created = await backend.submit(data)
        return Response(
            out, status_code=202 if created else 200, headers={"Location": f"/api/jobs/{out.job.id}"}
        )

    @get("/", summary="Jobs, newest first")
    async def list_jobs(
        self,
        backend: Backend,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000_000)] = 0,
        status: Literal["queued", "running", "completed", "failed", "cancelled"] | None = None,
    ) -> JobPage:
        items, total = await backend.list_jobs(limit, offset, status)
        return JobPage(items=items, total=total, limit=limit, offset=offset)

    @get("/{job_id:str}", summary="Status, progress (0-100), error, output key and presigned URL")
    async def get_job(self, backend: Backend, job_id: JobId) -> JobOut:
        return await backend.get_job(job_id)

    @post("/{job_id:str}/cancel", status_code=202, summary="Cancel a queued or running job")
    async def cancel_job(self, backend: Backend, job_id: JobId) -> JobOut:
        return await backend.cancel(job_id)

    @post("/{job_id:str}/callback", status_code=200, summary="Result report from the Lambda handler")
    async def callback(self, backend: Backend, job_id: JobId, data: JobCallback) -> JobOut:
        return await backend.callback(job_id, data)
