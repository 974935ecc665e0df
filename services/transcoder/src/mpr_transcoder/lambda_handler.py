"""AWS Lambda entry (the seed's "Lambda mode"): same core as the NATS worker, result posted back
to the API at ``POST /api/jobs/{id}/callback``.

Event: ``{"job": {<JobRequested fields>}, "callback_url": "https://api…", "callback_token": "…"}``;
``callback_url``/``callback_token`` default to ``MPR_CALLBACK_URL``/``MPR_CALLBACK_TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import msgspec

from mpr_common.events import JobRequested
from mpr_common.storage import get_s3_client

from .pipeline import JobError, Limits, run_job
from .settings import TranscoderSettings


def _post(url: str, token: str | None, body: dict[str, Any], timeout: float = 30.0) -> int:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    last: Exception | None = None
    for attempt in range(4):  # the API may be restarting: retry a few times
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL from our own config
                return resp.status
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.5 * 2**attempt)
    raise RuntimeError(f"callback to {url} failed: {last}")


def handler(
    event: dict[str, Any], context: Any = None, *, settings: TranscoderSettings | None = None
) -> dict:
    settings = settings or TranscoderSettings.from_env()
    try:
        job = msgspec.convert(event.get("job", event), JobRequested)
    except msgspec.ValidationError as exc:
        return {"status": "failed", "error": f"bad event: {exc}"}
    base = (event.get("callback_url") or os.environ.get("MPR_CALLBACK_URL", "")).rstrip("/")
    token = event.get("callback_token") or os.environ.get("MPR_CALLBACK_TOKEN")
    limits = Limits.from_settings(settings)
    s3 = get_s3_client(settings.s3)
    try:
        outcome = asyncio.run(
            run_job(
                job,
                s3=s3,
                s3_settings=settings.s3,
                workdir=settings.workdir,
                on_progress=lambda pct, rep: None,
                limits=limits,
            )
        )
        result: dict[str, Any] = {
            "status": "completed",
            "output_key": outcome.output_key,
            "output_bucket": outcome.output_bucket,
            "output_keys": outcome.output_keys,
            "output_size": outcome.output_size,
            "duration": outcome.duration,
            "elapsed": round(outcome.elapsed, 3),
            "worker": "lambda",
        }
    except JobError as exc:
        result = {
            "status": "failed",
            "error": str(exc)[:4000],
            "reason": exc.reason if exc.reason != "cancelled" else "internal",
            "worker": "lambda",
        }
    if base:
        _post(f"{base}/api/jobs/{quote(job.job_id, safe='')}/callback", token, result)
    return {"job_id": job.job_id, **result}
