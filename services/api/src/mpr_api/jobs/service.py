"""Jobs: published to JetStream and answered from its acknowledgement; read from the catalog."""

from __future__ import annotations

import logging
import posixpath

import anyio
import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from nats.aio.client import Client

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.catalog_requests import GetJob, ListAssets, ListJobs
from mpr_common.content_keys import KEY_SECRET_ENV
from mpr_common.errors import Conflict, Unauthorized, Unavailable
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    JobStatus,
    JobView,
    MediaInfo,
    new_id,
)
from mpr_common.job_status import is_terminal
from mpr_common.jobs import JobRequestError, normalize_job, outcome_id
from mpr_common.jobstate import JobState
from mpr_common.keeping import keep_options
from mpr_common.keys import validate_key
from mpr_common.outputs import OutputOwners
from mpr_common.packages import manifest_keys
from mpr_common.s3_client import S3Client
from mpr_common.source_languages import check_source_languages
from mpr_common.subtitles import list_sidecars

from ..assets.media_links import MediaLinks
from ..catalog import ask_catalog
from ..http.field_errors import FieldConflict, FieldError
from . import executors
from .callbacks import CallbackTokens
from .metrics import JOBS_SUBMITTED
from .schemas import JobCallback, JobCreate, JobOut
from .settings import JobSettings
from .templates import templated_body

log = logging.getLogger("mpr.api")


class JobNotConfirmed(Unavailable):
    """The queue did not confirm a job, which may yet be stored (a client's reconnect buffer is
    flushed later) and run: the answer names the job_id to retry with, which never runs it twice."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(
            f"the job queue is unavailable: it did not confirm job {job_id} ({reason}), which may still run. "
            f'Retry the same request with "job_id": "{job_id}" and it runs once'
        )
        self.job_id = job_id

    @property
    def extra(self) -> dict[str, str]:
        return {"job_id": self.job_id}

    @property
    def graphql_extensions(self) -> dict[str, str]:
        return {"jobId": self.job_id}  # retry with it: the job runs once


class JobService:
    def __init__(
        self,
        settings: JobSettings,
        nc: Client,
        job_state: JobState,
        public_s3: S3Client,
        callbacks: CallbackTokens,
        owners: OutputOwners,
        links: MediaLinks,
        s3: S3Client | None = None,
    ) -> None:
        self.settings = settings
        self.s3 = s3  # lists the subtitle files beside a source (None: not listed)
        self.nc = nc
        self.js = nc.jetstream()
        self.job_state = job_state
        self.public_s3 = public_s3
        self.callbacks = callbacks
        self.owners = owners
        self.links = links

    async def _job(self, job_id: str, after_seq: int = 0) -> JobView:
        """The job as the catalog has it (once it has ingested the jobs stream up to ``after_seq``)."""
        reply = await ask_catalog(
            self.nc, GetJob(id=job_id, after_seq=after_seq), self.settings.request_timeout
        )
        return reply.job

    def out(self, job: JobView) -> JobOut:
        """A completed job with its output's link: a signed folder link (on the API) for a playlist,
        DASH manifest or WebVTT track, so that the media they name play too; else a presigned URL. A
        playable package gets the same kind of link to its master playlist (``playable_url``), from
        the moment it can be played."""
        bucket = job.output_bucket or self.settings.s3.bucket_out
        url = None
        if job.status == "completed" and job.output_key and job.outcome != "not_kept":
            url = self.links.link(bucket, job.output_key, self.public_s3)
        if job.playable_at is not None and job.playable_key:
            job = msgspec.structs.replace(
                job, playable_url=self.links.link(bucket, job.playable_key, self.public_s3)
            )
        return JobOut(job=job, output_url=url)

    async def submit(self, body: JobCreate, requested_by: str = "api") -> tuple[JobOut, bool]:
        """Publish a job; returns (job, created). The answer comes from what JetStream acknowledged:
        the catalog records the job from the stream, once. A repeated job_id is not run twice."""
        try:
            template = None
            if body.template is not None:  # the template's fields are the defaults of the request's
                body, template = await templated_body(self.js, body)
            if body.kind is None:
                raise JobRequestError("kind is required (or a template that names one)", field="kind")
            req = normalize_job(
                JobRequested(
                    job_id=body.job_id or new_id(),
                    kind=body.kind,
                    source_key=body.source_key,
                    output_key=body.output_key,
                    preset=body.preset,
                    start=body.start,
                    end=body.end,
                    requested_by=requested_by,
                    loudnorm=body.loudnorm,
                    storyboard=body.storyboard,
                    chunk_seconds=body.chunk_seconds,
                    progressive=body.progressive,
                    audio_languages=body.audio_languages,
                    subtitles=body.subtitles,
                    subtitle_languages=body.subtitle_languages,
                    burn_subtitles=body.burn_subtitles,
                    encryption=body.encryption,
                    watermark=body.watermark,
                    preview=body.preview,
                    keep_if=body.keep_if,
                    min_psnr=body.min_psnr,
                    min_ssim=body.min_ssim,
                    ladder=body.ladder,
                    quality_target=body.quality_target,
                    priority=body.priority,
                    template=template,
                )
            )
        except JobRequestError as exc:
            raise FieldError(str(exc), exc.field) from None
        await self._check_languages(req)
        if req.encryption is not None and not self.settings.key_secret:
            raise FieldError(
                f"encryption is not configured on this deployment ({KEY_SECRET_ENV} is unset)", "encryption"
            )
        executor = executors.choose(body.executor, req.kind, self.settings)  # 400 before anything is claimed
        if executor in executors.DISPATCHED and keep_options(req):
            name = keep_options(req)[0]
            raise FieldError(
                f'{name} is judged on the transcoders (executor "workers"), not "{executor}"', name
            )
        await self._claim_outputs(req, explicit=body.output_key is not None)
        try:
            # A client is waiting: a few quick retries, then a 503 naming the job_id to retry with.
            dispatched = executor in executors.DISPATCHED
            subject = s.JOB_DISPATCHED if dispatched else s.requested_subject(req.priority)
            ack = await publish_event(self.js, subject, req, msg_id=req.job_id, attempts=3)
        except Exception as exc:
            raise JobNotConfirmed(req.job_id, str(exc) or type(exc).__name__) from None
        JOBS_SUBMITTED.labels(req.kind, "duplicate" if ack.duplicate else "accepted").inc()
        if ack.duplicate:
            # The original is in the stream at ack.seq: read it once the catalog has ingested that far.
            existing = await self._job(req.job_id, after_seq=ack.seq)
            if executor == "stepfunctions" and executors.never_started(existing):
                # the first answer may have been lost before its execution started: one per name
                await executors.start_execution(self.settings, self.js, req, self.callbacks.issue(req.job_id))
            return self.out(existing), False
        if executor == "stepfunctions":  # its callback token goes in the execution's input only
            await executors.start_execution(self.settings, self.js, req, self.callbacks.issue(req.job_id))
        token = self.callbacks.issue(req.job_id) if executor == "lambda" else None
        return JobOut(job=queued_view(req), callback_token=token), True

    async def _check_languages(self, req: JobRequested) -> None:
        """A 400 for a language the source lacks, when the catalog has probed it (its newest version);
        else the job fails with the reason when it is planned."""
        if req.audio_languages is None and req.subtitle_languages is None and req.burn_subtitles is None:
            return
        bucket = req.source_bucket or self.settings.s3.bucket_in
        info = await self._probed(bucket, req.source_key)
        if info is None:
            return
        sidecars = None
        if self.s3 is not None and (req.subtitle_languages is not None or req.burn_subtitles is not None):
            try:
                sidecars = await anyio.to_thread.run_sync(list_sidecars, self.s3, bucket, req.source_key)
            except (ClientError, BotoCoreError) as exc:
                log.warning("listing the sidecars of %s/%s failed: %s", bucket, req.source_key, exc)
        try:
            check_source_languages(req, info, sidecars)
        except JobRequestError as exc:
            raise FieldError(str(exc), exc.field) from None

    async def _probed(self, bucket: str, key: str) -> MediaInfo | None:
        """The catalog's probe of the newest version of ``bucket``/``key``; None when it has none (not
        scanned or not probed yet, removed, or the catalog did not answer)."""
        try:
            page = await ask_catalog(
                self.nc, ListAssets(prefix=key, limit=100), self.settings.request_timeout
            )
        except Unavailable:
            return None
        versions = [a for a in page.assets if a.bucket == bucket and a.key == key and not a.removed]
        newest = max(versions, key=lambda a: a.updated_at, default=None)
        if newest is None or newest.probe_status != "ok":
            return None
        return newest.info

    async def _claim_outputs(self, req: JobRequested, explicit: bool) -> None:
        """Claim what the job will write, or raise 409 naming the job that owns it: the output key given
        (a default one lives under the job's own id: no one else's), and a package's manifests, which it
        writes beside its output key whatever that is named. All are looked at before any is claimed,
        so that a refused job leaves no claim behind."""
        assert req.output_key is not None
        bucket = self.settings.s3.bucket_out
        keys = [req.output_key] if explicit else []
        if req.kind == "package":
            keys += [k for k in manifest_keys(req) if k not in keys]
        for key in keys:
            owner = await self.owners.owner(bucket, key)
            if owner is not None and owner != req.job_id:
                raise self._owned(req, key, owner)
        for key in keys:
            owner = await self.owners.claim(bucket, key, req.job_id)
            if owner is not None:  # claimed meanwhile
                raise self._owned(req, key, owner)

    @staticmethod
    def _owned(req: JobRequested, key: str, owner: str) -> Conflict:
        if key == req.output_key:
            return FieldConflict(f"output_key {key!r} belongs to job {owner}", "output_key")
        return FieldConflict(
            f"output_key: {key!r} belongs to job {owner}, and a package writes its manifests there: "
            "choose a folder of its own",
            "output_key",
        )

    async def get(self, job_id: str) -> JobOut:
        return self.out(await self._job(job_id))

    async def list(self, limit: int, offset: int, status: JobStatus | None) -> tuple[list[JobOut], int]:
        req = ListJobs(limit=limit, offset=offset, status=status)
        reply = await ask_catalog(self.nc, req, self.settings.request_timeout)
        return [self.out(j) for j in reply.jobs], reply.total

    async def cancel(self, job_id: str) -> JobOut:
        current = await self.get(job_id)
        if is_terminal(current.job.status):
            raise Conflict(f"job {job_id} is already {current.job.status}")
        await self.job_state.cancelled(job_id)
        retry = current.job.retries  # the run being cancelled
        ack = await publish_event(
            self.js,
            s.JOB_CANCEL,
            JobCancel(job_id=job_id, retry=retry),
            msg_id=outcome_id("cancel", job_id, retry),
        )
        return self.out(await self._job(job_id, after_seq=ack.seq))

    async def _check_owned(self, job: JobView, output_key: str) -> None:
        """A callback reports only its own job's output: the key the job was dispatched with, or one
        claimed by that job. Anything else would make its ``output_url`` presign another job's file."""
        if output_key == job.output_key:
            return
        bucket = job.output_bucket or self.settings.s3.bucket_out
        owner = await self.owners.owner(bucket, output_key)
        if owner != job.id:
            whose = (
                f"it belongs to job {owner}"
                if owner
                else f"the job was dispatched with {_short(job.output_key)}"
            )
            raise FieldConflict(
                f"output_key {_short(output_key)} is not an output of job {job.id}: {whose}", "output_key"
            )

    async def callback(self, job_id: str, body: JobCallback, token: str) -> JobOut:
        """A result from the Lambda handler, with the token issued when this very job was dispatched."""
        if not self.callbacks.valid(job_id, token):
            raise Unauthorized("a callback needs the token issued when this job was dispatched to Lambda")
        if body.output_bucket is not None and body.output_bucket != self.settings.s3.bucket_out:
            raise FieldError(
                f"output_bucket is fixed by configuration ({self.settings.s3.bucket_out})", "output_bucket"
            )
        job = (await self.get(job_id)).job  # 404 for an unknown job
        retry = job.retries  # the run reporting
        event: JobCompleted | JobFailed | JobProgress
        if body.status == "completed":
            if not body.output_key:
                raise FieldError("a completed callback needs output_key", "output_key")
            try:
                validate_key(body.output_key)
            except ValueError as exc:
                raise FieldError(f"output_key: {exc}", "output_key") from None
            folder = posixpath.dirname(body.output_key)
            for i, key in enumerate(body.output_keys):
                try:
                    validate_key(key)
                except ValueError as exc:
                    raise FieldError(f"output_keys[{i}]: {exc}", "output_keys") from None
                if posixpath.dirname(key) != folder:  # the uploader writes a job's files beside its output
                    raise FieldError(
                        f"output_keys[{i}]: {_short(key)} is not in the folder of output_key", "output_keys"
                    )
            await self._check_owned(job, body.output_key)
            subject, event, msg_id = (
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
                    retry=retry,
                ),
                outcome_id("completed", job_id, retry),
            )
        elif body.status == "failed":
            subject, event, msg_id = (
                s.JOB_FAILED,
                JobFailed(
                    job_id=job_id,
                    error=body.error or "failed",
                    reason=body.reason or "internal",
                    worker=body.worker or "lambda",
                    retry=retry,
                ),
                outcome_id("failed", job_id, retry),
            )
        else:
            subject, event, msg_id = (
                s.JOB_PROGRESS,
                JobProgress(
                    job_id=job_id, progress=body.progress, worker=body.worker or "lambda", retry=retry
                ),
                None,
            )
        ack = await publish_event(self.js, subject, event, msg_id=msg_id)
        return self.out(await self._job(job_id, after_seq=ack.seq))


def _short(key: str | None, limit: int = 200) -> str:
    """A key named in an error message: a callback's key may be 1,024 characters."""
    text = repr(key)
    return text if len(text) <= limit else f"{text[:limit]}…"


def queued_view(req: JobRequested) -> JobView:
    """What JetStream has stored, before any worker has touched it."""
    at = req.requested_at
    fields = msgspec.structs.asdict(req)
    return msgspec.convert(
        {**fields, "id": req.job_id, "status": "queued", "created_at": at, "updated_at": at}, JobView
    )
