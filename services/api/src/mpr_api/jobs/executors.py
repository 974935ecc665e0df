"""Who runs a job (docs/executors.md): the transcoders ("workers", over NATS), an AWS Step Functions
execution of the transcoder Lambda ("stepfunctions"), or a caller that runs the Lambda handler itself
("lambda": the job is recorded and its callback token returned, nothing is started).

A job run outside the transcoders is published on ``mpr.jobs.dispatched`` (the catalog records it, no
transcoder sees it) and reports back on ``POST /api/jobs/{id}/callback`` with a token bound to its id.
For "stepfunctions" the API starts one execution per job, named after it, whose input carries the job,
that token and the buckets: nothing else secret (the token is for this job only, and it expires)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from typing import Any, Protocol
from urllib.parse import quote

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.errors import Unavailable
from mpr_common.events import JobFailed, JobRequested, JobView

from ..http.field_errors import FieldError
from .settings import JobSettings, callback_base, stepfunctions_configured

log = logging.getLogger("mpr.api.executors")

# Run outside the transcoders: published on mpr.jobs.dispatched, results come back by callback.
DISPATCHED: frozenset[str] = frozenset({"stepfunctions", "lambda"})

# Step Functions' limit on an execution name (and the characters it allows: job ids are [A-Za-z0-9_-]).
MAX_EXECUTION_NAME = 80
WORKER = "stepfunctions"  # JobFailed.worker when no execution could be started


def choose(requested: str | None, kind: str, settings: JobSettings) -> str:
    """The executor of a job: the request's, else the deployment's (``API_EXECUTOR``). A package is
    planned into child jobs on the transcoders' queue, so it runs there only."""
    executor = requested or settings.executor
    if executor in DISPATCHED and kind == "package":
        raise FieldError(
            f'a package runs on the transcoders (executor "workers"), not "{executor}"', "executor"
        )
    if executor == "stepfunctions" and not stepfunctions_configured(settings):
        raise FieldError(
            'executor "stepfunctions" is not configured on this API '
            "(API_STEPFUNCTIONS_STATE_MACHINE_ARN and API_CALLBACK_URL or API_PUBLIC_URL)",
            "executor",
        )
    return executor


def callback_url(base: str, job_id: str) -> str:
    return f"{base}/api/jobs/{quote(job_id, safe='')}/callback"


def execution_name(job_id: str) -> str:
    """One execution per job: a second StartExecution with the same name starts nothing. A job id
    longer than Step Functions allows keeps a readable prefix and a digest of the whole id."""
    if len(job_id) <= MAX_EXECUTION_NAME:
        return job_id
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:32]
    return f"{job_id[: MAX_EXECUTION_NAME - len(digest) - 1]}-{digest}"


def execution_input(req: JobRequested, settings: JobSettings, token: str) -> dict[str, Any]:
    """The state machine's input, which the Lambda handler is invoked with."""
    base = callback_base(settings)
    assert base is not None  # choose() refuses "stepfunctions" without one
    return {
        "job": msgspec.to_builtins(req),
        "callback": {"url": callback_url(base, req.job_id), "token": token},
        "s3": {"bucket_in": settings.s3.bucket_in, "bucket_out": settings.s3.bucket_out},
    }


def never_started(job: JobView) -> bool:
    """A repeated submit of a job the catalog still has as queued: its execution may not have been
    started (the first answer was lost before StartExecution), so it is started now, by name."""
    return job.status == "queued" and job.worker is None and job.attempts == 0


class StepFunctionsUnavailable(Unavailable):
    """Step Functions did not start a job's execution: the job has failed (reason "internal")."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(
            f"Step Functions did not start job {job_id} ({reason}): the job has failed; submit it again "
            "with a new job_id"
        )
        self.job_id = job_id

    @property
    def extra(self) -> dict[str, str]:
        return {"job_id": self.job_id}


class StepFunctionsClient(Protocol):
    """The boto3 ``stepfunctions`` client's one call the API makes (boto3 ships no type stubs)."""

    def start_execution(self, **kwargs: Any) -> dict[str, Any]: ...


class StepFunctions:
    """StartExecution on one state machine (a blocking boto3 call, run in a thread)."""

    def __init__(self, client: StepFunctionsClient, state_machine_arn: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """True: started now; False: an execution of that name exists already (running or ended)."""
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=name,
                input=json.dumps(payload, separators=(",", ":")),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return False
            raise
        return True


@functools.cache
def stepfunctions(arn: str, region: str, endpoint_url: str | None, profile: str | None) -> StepFunctions:
    """One client per configuration, made on first use. A named profile keeps the API's own AWS_*
    variables (MinIO's credentials, with S3 off AWS) out of the credential chain."""
    session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10)
    client = session.client("stepfunctions", region_name=region, endpoint_url=endpoint_url, config=config)
    return StepFunctions(client, arn)


def stepfunctions_for(settings: JobSettings) -> StepFunctions:
    assert settings.stepfunctions_state_machine_arn
    return stepfunctions(
        settings.stepfunctions_state_machine_arn,
        settings.stepfunctions_region or settings.s3.region,
        settings.stepfunctions_endpoint_url,
        settings.stepfunctions_profile,
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}"[:300]
    return (str(exc) or type(exc).__name__)[:300]


async def start_execution(settings: JobSettings, js: JetStreamContext, req: JobRequested, token: str) -> None:
    """Start the job's execution (an existing one of its name is fine). If Step Functions does not
    start it, the job fails with the reason, and the client gets a 503 naming it."""
    payload = execution_input(req, settings, token)
    try:
        # in a thread: the first call also makes the client (credentials, endpoints)
        started = await asyncio.to_thread(
            lambda: stepfunctions_for(settings).start(execution_name(req.job_id), payload)
        )
    except (ClientError, BotoCoreError) as exc:
        reason = _reason(exc)
        log.warning("Step Functions did not start job %s: %s", req.job_id, reason)
        failed = JobFailed(
            job_id=req.job_id,
            error=f"Step Functions did not start the job: {reason}",
            reason="internal",
            worker=WORKER,
        )
        try:
            await publish_event(js, s.JOB_FAILED, failed, msg_id=f"failed-{req.job_id}")
        except Exception as pub:  # the 503 says what happened; the job stays queued, a retry starts it
            log.warning("job %s: its failure was not recorded: %s", req.job_id, pub)
        raise StepFunctionsUnavailable(req.job_id, reason) from None
    if not started:
        log.info("job %s: its execution exists already", req.job_id)
