"""What the API does, for REST and GraphQL alike: talks to the scanner and catalog over NATS,
publishes jobs to JetStream. Handlers stay thin and call this."""

from __future__ import annotations

from typing import Any, TypeVar

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.codec import decoder, encode
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    JobView,
    ObjectFound,
    Query,
    QueryReply,
    RegisterReply,
    RegisterRequest,
    ScanChunk,
    ScanRequest,
    new_id,
)
from mpr_common.jobs import TERMINAL, JobRequestError, normalize_job
from mpr_common.keys import validate_key
from mpr_common.metrics import JOBS_SUBMITTED
from mpr_common.storage import get_presigned_url

from .schemas import JobCallback, JobCreate, JobOut, ScanResult
from .settings import ApiSettings

T = TypeVar("T")
REGISTER_CHUNK = 500  # objects per register request (well under NATS's max payload)


class Unavailable(Exception):
    """A service behind the API did not answer: HTTP 503."""


class NotFound(Exception):
    """HTTP 404."""


class Conflict(Exception):
    """HTTP 409."""


class BadRequest(Exception):
    """HTTP 400."""


class Backend:
    def __init__(self, settings: ApiSettings, nc: Client, kv: Any, public_s3: Any) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.kv = kv
        self.public_s3 = public_s3
        self._scan_chunk = decoder(ScanChunk)

    async def _request(
        self, subject: str, payload: Any, reply_type: type[T], timeout: float | None = None
    ) -> T:
        try:
            msg = await self.nc.request(
                subject, encode(payload), timeout=timeout or self.settings.request_timeout
            )
        except NoRespondersError:
            raise Unavailable(f"no {subject.split('.')[1]} service is running") from None
        except (TimeoutError, NatsTimeoutError):
            raise Unavailable(f"the {subject.split('.')[1]} service did not answer in time") from None
        reply = decoder(reply_type).decode(msg.data)
        error = getattr(reply, "error", None)
        if error:
            raise (BadRequest if error.startswith("bad request") else Unavailable)(error)
        return reply

    # --- assets ------------------------------------------------------------------------------
    async def scan(self, prefix: str = "") -> ScanResult:
        if prefix:
            try:
                validate_key(prefix.rstrip("/") or "x")
            except ValueError as exc:
                raise BadRequest(f"prefix: {exc}") from None
        req = ScanRequest(scan_id=new_id(), prefix=prefix)
        objects = await self._scan(req)
        registered = skipped = 0
        for i in range(0, len(objects), REGISTER_CHUNK):
            reg = await self._request(
                s.CATALOG_REGISTER,
                RegisterRequest(scan_id=req.scan_id, objects=objects[i : i + REGISTER_CHUNK]),
                RegisterReply,
                self.settings.scan_timeout,
            )
            registered += len(reg.registered)
            skipped += len(reg.skipped)
        return ScanResult(
            found=len(objects), registered=registered, skipped=skipped, files=[o.key for o in objects]
        )

    async def _scan(self, req: ScanRequest) -> list[ObjectFound]:
        """Ask a scanner; collect its chunked reply from our own inbox."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        objects: list[ObjectFound] = []
        try:
            await self.nc.publish(s.SCAN_REQUEST, encode(req), reply=inbox)
            while True:
                try:
                    msg = await sub.next_msg(timeout=self.settings.scan_timeout)
                except (TimeoutError, NatsTimeoutError):
                    raise Unavailable("the scanner service did not answer in time") from None
                if msg.headers and msg.headers.get("Status") == "503":
                    raise Unavailable("no scanner service is running")
                chunk = self._scan_chunk.decode(msg.data)
                if chunk.error:
                    raise (BadRequest if chunk.error.startswith("bad request") else Unavailable)(chunk.error)
                objects += chunk.objects
                if chunk.done:
                    return objects
        finally:
            await sub.unsubscribe()

    async def list_assets(self, limit: int, offset: int, prefix: str | None) -> QueryReply:
        return await self._request(
            s.CATALOG_ASSETS_LIST, Query(limit=limit, offset=offset, prefix=prefix), QueryReply
        )

    async def get_asset(self, asset_id: str) -> QueryReply:
        reply = await self._request(s.CATALOG_ASSET_GET, Query(id=asset_id), QueryReply)
        if reply.asset is None:
            raise NotFound(f"asset {asset_id} not found")
        return reply

    # --- jobs --------------------------------------------------------------------------------
    def job_out(self, job: JobView) -> JobOut:
        url = None
        if job.status == "completed" and job.output_key:
            url = get_presigned_url(
                job.output_key, job.output_bucket or self.settings.s3.bucket_out, client=self.public_s3
            )
        return JobOut(job=job, output_url=url)

    async def submit(self, body: JobCreate, requested_by: str = "api") -> tuple[JobOut, bool]:
        """Publish a job; returns (job, created). A repeated job_id is not run twice."""
        req = JobRequested(
            job_id=body.job_id or new_id(),
            kind=body.kind,
            source_key=body.source_key,
            output_key=body.output_key,
            preset=body.preset,
            start=body.start,
            end=body.end,
            requested_by=requested_by,
        )
        try:
            req = normalize_job(req)
        except JobRequestError as exc:
            raise BadRequest(str(exc)) from None
        try:
            ack = await publish_event(self.js, s.JOB_REQUESTED, req, msg_id=req.job_id)
        except Exception as exc:
            raise Unavailable(f"the job queue is unavailable: {exc}") from None
        JOBS_SUBMITTED.labels(req.kind, "duplicate" if ack.duplicate else "accepted").inc()
        if ack.duplicate:
            existing = await self._request(s.CATALOG_JOB_GET, Query(id=req.job_id), QueryReply)
            if existing.job is not None:
                return self.job_out(existing.job), False
        try:
            # The job is safe in JetStream already; recording it now makes it visible at once.
            reply = await self._request(s.CATALOG_JOB_RECORD, req, QueryReply)
            assert reply.job is not None
            return self.job_out(reply.job), not ack.duplicate
        except Unavailable:
            return JobOut(job=_queued_view(req)), not ack.duplicate

    async def get_job(self, job_id: str) -> JobOut:
        reply = await self._request(s.CATALOG_JOB_GET, Query(id=job_id), QueryReply)
        if reply.job is None:
            raise NotFound(f"job {job_id} not found")
        return self.job_out(reply.job)

    async def list_jobs(self, limit: int, offset: int, status: str | None) -> tuple[list[JobOut], int]:
        reply = await self._request(
            s.CATALOG_JOBS_LIST, Query(limit=limit, offset=offset, status=status), QueryReply
        )
        return [self.job_out(j) for j in reply.jobs], reply.total

    async def cancel(self, job_id: str) -> JobOut:
        current = await self.get_job(job_id)
        if current.job.status in TERMINAL:
            raise Conflict(f"job {job_id} is already {current.job.status}")
        await self.kv.put(job_id, b"cancelled")
        await publish_event(self.js, s.JOB_CANCEL, JobCancel(job_id=job_id), msg_id=f"cancel-{job_id}")
        return await self.get_job(job_id)

    async def callback(self, job_id: str, body: JobCallback) -> JobOut:
        await self.get_job(job_id)  # 404 for an unknown job
        if body.status == "completed":
            if not body.output_key:
                raise BadRequest("a completed callback needs output_key")
            try:
                validate_key(body.output_key)
            except ValueError as exc:
                raise BadRequest(f"output_key: {exc}") from None
            await publish_event(
                self.js,
                s.JOB_COMPLETED,
                JobCompleted(
                    job_id=job_id,
                    output_key=body.output_key,
                    output_bucket=body.output_bucket or self.settings.s3.bucket_out,
                    output_keys=body.output_keys or [body.output_key],
                    output_size=body.output_size,
                    duration=body.duration,
                    elapsed=body.elapsed,
                    worker=body.worker or "lambda",
                ),
                msg_id=f"completed-{job_id}",
            )
        elif body.status == "failed":
            await publish_event(
                self.js,
                s.JOB_FAILED,
                JobFailed(
                    job_id=job_id,
                    error=body.error or "failed",
                    reason=body.reason or "internal",
                    worker=body.worker or "lambda",
                ),
                msg_id=f"failed-{job_id}",
            )
        else:
            await publish_event(
                self.js,
                s.JOB_PROGRESS,
                JobProgress(job_id=job_id, progress=body.progress, worker=body.worker or "lambda"),
            )
        return await self.get_job(job_id)

    def media_url(self, which: str, key: str) -> str:
        try:
            validate_key(key)
        except ValueError as exc:
            raise BadRequest(f"key: {exc}") from None
        bucket = self.settings.s3.bucket_in if which == "in" else self.settings.s3.bucket_out
        return get_presigned_url(key, bucket, client=self.public_s3)


def _queued_view(req: JobRequested) -> JobView:
    return JobView(
        id=req.job_id,
        kind=req.kind,
        status="queued",
        progress=0.0,
        source_key=req.source_key,
        source_bucket=req.source_bucket,
        output_key=req.output_key,
        output_bucket=req.output_bucket,
        output_keys=[],
        output_size=None,
        preset=req.preset,
        start=req.start,
        end=req.end,
        error=None,
        failure_reason=None,
        speed=None,
        attempts=0,
        worker=None,
        created_at=req.requested_at,
        updated_at=req.requested_at,
        started_at=None,
        finished_at=None,
    )
