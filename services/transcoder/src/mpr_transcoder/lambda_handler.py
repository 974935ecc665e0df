"""AWS Lambda entry (docs/executors.md): the transcoders' core on one job, its result posted to the API
at ``POST /api/jobs/{id}/callback`` with the token the API issued for that job.

The state machine (deploy/stepfunctions/job.asl.json) invokes it with its input::

    {"job": {<JobRequested>}, "callback": {"url": "https://api…/api/jobs/<id>/callback", "token": "…"},
     "s3": {"bucket_in": "…", "bucket_out": "…"}}

and, from its Catch, with the same plus ``"error": {"Error": …, "Cause": …}``: the run ended in a way it
could not report itself (the Lambda crashed or ran out of time), which is then reported. A caller that
runs the handler itself (``"executor": "lambda"``) may pass ``"callback_url"`` (the API's address) and
``"callback_token"`` instead, or ``MPR_CALLBACK_URL`` / ``MPR_CALLBACK_TOKEN``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import msgspec

from mpr_common.events import FailureReason, JobRequested
from mpr_common.settings import S3Settings
from mpr_common.storage import get_s3_client

from .ffmpeg import ProgressReport
from .job_errors import JobError
from .limits import Limits
from .pipeline import run_job
from .settings import TranscoderSettings

log = logging.getLogger("mpr.transcoder.lambda")

WORKER = "lambda"
MAX_ERROR_CHARS = 4000  # what the callback accepts (the API's MAX_ERROR_CHARS)
# Kept from the Lambda's remaining time for reporting the result: the job stops this much earlier.
REPORT_RESERVE = 30.0
PROGRESS_EVERY = 5.0  # seconds between progress callbacks (each is a request through the API)


class Callback:
    """Posts to one job's callback URL."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token

    def post(self, body: dict[str, Any], attempts: int = 4, timeout: float = 30.0) -> int:
        """Retries while the API is unreachable or answers 5xx (it may be restarting); a 4xx (such as
        a refused token) raises at once."""
        req = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the API's URL
                    return resp.status
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    raise
                last = exc
            except OSError as exc:
                last = exc
            if attempt + 1 < attempts:
                time.sleep(0.5 * 2**attempt)
        raise RuntimeError(f"callback to {self.url} failed: {last}")


def callback_from(event: Mapping[str, Any], job_id: str, environ: Mapping[str, str]) -> Callback | None:
    """Where the result goes: the state machine's ``callback``, else the API's address, else none."""
    given = event.get("callback")
    if isinstance(given, Mapping) and given.get("url"):
        return Callback(str(given["url"]), given.get("token"))
    base = str(event.get("callback_url") or environ.get("MPR_CALLBACK_URL", "")).rstrip("/")
    if not base:
        return None
    token = event.get("callback_token") or environ.get("MPR_CALLBACK_TOKEN")
    return Callback(f"{base}/api/jobs/{quote(job_id, safe='')}/callback", token)


def s3_settings_for(s3: S3Settings, given: Any, environ: Mapping[str, str]) -> S3Settings:
    """The buckets the API named in the input; on Lambda (temporary credentials, with a session token
    that S3Settings does not carry) the default credential chain instead of the bare key pair."""
    changes: dict[str, Any] = {}
    if isinstance(given, Mapping):
        changes = {k: str(given[k]) for k in ("bucket_in", "bucket_out") if given.get(k)}
    if environ.get("AWS_SESSION_TOKEN"):
        changes.update(access_key_id=None, secret_access_key=None)
    return dataclasses.replace(s3, **changes) if changes else s3


def reported_failure(error: Any) -> dict[str, Any]:
    """The callback body for a failure the state machine caught (``{"Error", "Cause"}``): a Lambda's
    Cause is JSON with its errorType and errorMessage."""
    error = error if isinstance(error, Mapping) else {}
    name = str(error.get("Error") or "error")
    cause: Any = error.get("Cause") or ""
    try:
        parsed = json.loads(cause) if isinstance(cause, str) and cause.startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping) and parsed.get("errorMessage"):
        cause = f"{parsed.get('errorType') or name}: {parsed['errorMessage']}"
    text = (
        f"the transcoder Lambda did not finish ({name}): {cause}"
        if cause
        else f"the transcoder Lambda did not finish ({name})"
    )
    timed_out = name in ("States.Timeout", "Sandbox.Timedout") or "timed out" in str(cause).lower()
    reason: FailureReason = "timeout" if timed_out else "internal"
    return {"status": "failed", "error": text[:MAX_ERROR_CHARS], "reason": reason, "worker": WORKER}


def remaining_seconds(context: Any) -> float | None:
    """What is left of the invocation, from Lambda's context object (None: not under Lambda)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else None


class Progress:
    """Progress callbacks, at most one every PROGRESS_EVERY seconds and one at a time, off the event
    loop; one that fails is dropped (the next one says more)."""

    def __init__(self, callback: Callback | None) -> None:
        self.callback = callback
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpr-progress")
        self.pending: Future | None = None
        self.last = 0.0

    def __call__(self, pct: float, report: ProgressReport) -> None:
        now = time.monotonic()
        if self.callback is None or now - self.last < PROGRESS_EVERY:
            return
        if self.pending is not None and not self.pending.done():
            return
        self.last = now
        body = {"status": "progress", "progress": round(min(max(pct, 0.0), 100.0), 1), "worker": WORKER}
        self.pending = self.pool.submit(self._post, body)

    def _post(self, body: dict[str, Any]) -> None:
        assert self.callback is not None
        try:
            self.callback.post(body, attempts=1, timeout=5.0)
        except Exception as exc:
            log.info("progress callback dropped: %s", exc)

    def close(self) -> None:
        """Before the result: a late progress report must not follow it."""
        self.pool.shutdown(wait=True)


async def _run(
    job: JobRequested,
    settings: TranscoderSettings,
    s3_settings: S3Settings,
    deadline: float | None,
    progress: Progress,
) -> dict[str, Any]:
    scope = asyncio.timeout(deadline)
    try:
        async with scope:  # FFmpeg is stopped when the job is cancelled
            outcome = await run_job(
                job,
                s3=get_s3_client(s3_settings),
                s3_settings=s3_settings,
                workdir=settings.workdir,
                on_progress=progress,
                limits=Limits.from_settings(settings),
            )
    except TimeoutError:
        if not scope.expired():
            raise
        return {
            "status": "failed",
            "error": f"the job did not finish in the Lambda's {deadline:.0f}s: longer jobs run on the "
            'transcoders (executor "workers")',
            "reason": "timeout",
            "worker": WORKER,
        }
    except JobError as exc:
        return {
            "status": "failed",
            "error": str(exc)[:MAX_ERROR_CHARS],
            "reason": exc.reason if exc.reason != "cancelled" else "internal",
            "worker": WORKER,
        }
    return {
        "status": "completed",
        "output_key": outcome.output_key,
        "output_bucket": outcome.output_bucket,
        "output_keys": outcome.output_keys,
        "output_size": outcome.output_size,
        "duration": outcome.duration,
        "elapsed": round(outcome.elapsed, 3),
        "worker": WORKER,
    }


def handler(
    event: dict[str, Any],
    context: Any = None,
    *,
    settings: TranscoderSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Runs the job and reports it; returns the result (the state machine's Choice reads ``status``).
    Raises when the result could not be reported, so that the state machine's Catch reports it."""
    environ = os.environ if environ is None else environ
    raw_job = event.get("job", event)
    job_id = str(raw_job.get("job_id", "")) if isinstance(raw_job, Mapping) else ""
    callback = callback_from(event, job_id, environ)
    result: dict[str, Any]
    if "error" in event:  # from the state machine's Catch: the run could not report this itself
        result = reported_failure(event["error"])
    else:
        try:
            job = msgspec.convert(raw_job, JobRequested)
        except msgspec.ValidationError as exc:
            result = {"status": "failed", "error": f"bad event: {exc}", "reason": "invalid", "worker": WORKER}
        else:
            settings = settings or TranscoderSettings.from_env(environ)
            s3_settings = s3_settings_for(settings.s3, event.get("s3"), environ)
            if callback is not None:  # marks it running; a refused token stops here, before any work
                callback.post({"status": "progress", "progress": 0.0, "worker": WORKER})
            left = remaining_seconds(context)
            deadline = max(left - REPORT_RESERVE, 1.0) if left is not None else None
            progress = Progress(callback)
            try:
                result = asyncio.run(_run(job, settings, s3_settings, deadline, progress))
            finally:
                progress.close()
    if callback is not None and job_id:
        callback.post(result)
    return {"job_id": job_id, **result}
