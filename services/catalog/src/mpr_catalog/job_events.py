"""How a job event changes a job's row: pure functions over plain dicts, unit-tested without a database.

Events may arrive out of order (a completion before the last progress, a progress before the request):
the row depends only on the set of events seen, and never leaves a terminal state."""

from __future__ import annotations

import time
from typing import Any

from mpr_common.codec import encode
from mpr_common.events import JobCancel, JobCompleted, JobFailed, JobProgress, JobRequested
from mpr_common.jobs import TERMINAL, next_status

from .models import Job

JobRow = dict[str, Any]
JobEvent = JobRequested | JobProgress | JobCompleted | JobFailed | JobCancel

_DEFAULTS: JobRow = {name: field.default for name, field in Job.model_fields.items()}


def new_row(job_id: str, at: float) -> JobRow:
    return {**_DEFAULTS, "id": job_id, "created_at": at, "updated_at": at}


def _requested(job: JobRow, ev: JobRequested, new: bool) -> None:
    # Request fields only; the status is the state machine's (later events may be here already).
    job.update(
        kind=ev.kind,
        source_bucket=ev.source_bucket,
        source_key=ev.source_key,
        output_bucket=job["output_bucket"] or ev.output_bucket,
        output_key=job["output_key"] or ev.output_key,
        preset=ev.preset,
        start=ev.start,
        end=ev.end,
        requested_by=ev.requested_by,
        loudnorm=ev.loudnorm,
        parent_id=ev.parent_id,
        rendition=ev.rendition,
        weight=ev.weight,
        created_at=ev.requested_at if new else min(job["created_at"], ev.requested_at),
    )


def _progress(job: JobRow, ev: JobProgress, new: bool) -> None:
    if job["status"] in TERMINAL:
        return
    job.update(
        status=next_status(job["status"], "running"),
        progress=max(job["progress"], min(100.0, max(0.0, ev.progress))),
        speed=ev.speed if ev.speed is not None else job["speed"],
        worker=ev.worker or job["worker"],
        attempts=max(job["attempts"], ev.attempt),
        started_at=job["started_at"] or ev.at,
    )


def _completed(job: JobRow, ev: JobCompleted, new: bool) -> None:
    if next_status(job["status"], "completed") != "completed":
        return
    job.update(
        status="completed",
        progress=100.0,
        output_bucket=ev.output_bucket,
        output_key=ev.output_key,
        output_keys_json=encode(ev.output_keys or [ev.output_key]).decode(),
        output_size=ev.output_size,
        loudness_json=encode(ev.loudness).decode() if ev.loudness is not None else None,
        worker=ev.worker or job["worker"],
        attempts=max(job["attempts"], ev.attempt),
        error=None,
        failure_reason=None,
        finished_at=ev.at,
        started_at=job["started_at"] or (ev.at - (ev.elapsed or 0)),
    )


def _failed(job: JobRow, ev: JobFailed, new: bool) -> None:
    target = "cancelled" if ev.reason == "cancelled" else "failed"
    if next_status(job["status"], target) != target:
        return
    job.update(
        status=target,
        error=ev.error,
        failure_reason=ev.reason,
        worker=ev.worker or job["worker"],
        attempts=max(job["attempts"], ev.attempt),
        finished_at=ev.at,
    )


def _cancel(job: JobRow, ev: JobCancel, new: bool) -> None:
    if next_status(job["status"], "cancelled") != "cancelled":
        return
    job.update(
        status="cancelled",
        error=job["error"] or "cancelled by request",
        failure_reason="cancelled",
        finished_at=ev.at,
    )


_APPLY = {
    JobRequested: _requested,
    JobProgress: _progress,
    JobCompleted: _completed,
    JobFailed: _failed,
    JobCancel: _cancel,
}


def fold(rows: dict[str, JobRow], events: list[JobEvent], now: float | None = None) -> set[str]:
    """Apply ``events`` in order to ``rows`` (job_id → row, rows missing for new jobs are added);
    returns the ids whose row changed."""
    now = time.time() if now is None else now
    changed: set[str] = set()
    for ev in events:
        row = rows.get(ev.job_id)
        new = row is None
        if row is None:
            at = ev.requested_at if isinstance(ev, JobRequested) else now
            row = rows[ev.job_id] = new_row(ev.job_id, at)
            changed.add(ev.job_id)
        before = dict(row)
        _APPLY[type(ev)](row, ev, new)  # type: ignore[operator]
        if row != before:
            row["updated_at"] = now
            changed.add(ev.job_id)
    return changed
