"""How a job event changes a job's row: pure functions over plain dicts, unit-tested without a database.

Events may arrive out of order (a completion before the last progress, a progress before the request):
the row depends only on the set of events seen, and never leaves a terminal state of its generation.

Generations: a retry (JobRetried, then the request again with ``retry=n``) starts generation n of the
job, and the row always describes the newest generation seen. An event of an older generation never
changes it (a late failure of the run that was retried); the first event of a newer one, whichever
arrives first, starts it (back to queued, the last run's outcome forgotten). An outcome that names no
generation (``retry=None``: a publisher that does not set it) belongs to the current one."""

from __future__ import annotations

import time
from typing import Any

from mpr_common.codec import encode
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobMoved,
    JobPlayable,
    JobProgress,
    JobRequested,
    JobRetried,
)
from mpr_common.job_status import failed_status, is_retryable, is_terminal, next_status
from mpr_common.quality import without_frames

from .models import Job

JobRow = dict[str, Any]
JobEvent = (
    JobRequested | JobProgress | JobCompleted | JobPlayable | JobFailed | JobCancel | JobRetried | JobMoved
)

_DEFAULTS: JobRow = {name: field.default for name, field in Job.model_fields.items()}
# What one generation's run wrote: a new generation starts from these.
_RUN_FIELDS = (
    "status",
    "progress",
    "speed",
    "worker",
    "attempts",
    "error",
    "failure_reason",
    "output_size",
    "output_keys_json",
    "loudness_json",
    "quality_json",
    "rendition_quality_json",
    "outcome",
    "keep_json",
    "chosen_ladder_json",
    "started_at",
    "finished_at",
    "playable_at",
    "playable_key",
)
_RUN_DEFAULTS: JobRow = {name: _DEFAULTS[name] for name in _RUN_FIELDS}


def new_row(job_id: str, at: float) -> JobRow:
    return {**_DEFAULTS, "id": job_id, "created_at": at, "updated_at": at}


def _current(job: JobRow, retry: int | None) -> bool:
    """Whether an event of generation ``retry`` describes the row: an older one does not; a newer one
    starts its generation first."""
    if retry is None or retry == job["retries"]:
        return True
    if retry < job["retries"]:
        return False
    job.update(_RUN_DEFAULTS, retries=retry)
    return True


def _requested(job: JobRow, ev: JobRequested, new: bool) -> None:
    # Request fields only; the status is the state machine's (later events may be here already). Every
    # generation's request is the same request, so an older one may fill them in too.
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
    # The newest generation's request is the one recorded (an older one stands in until it arrives).
    if _current(job, ev.retry) or job["request_json"] is None:
        job.update(request_json=encode(ev).decode(), template=ev.template, rule=ev.rule)
        if job["moved_at"] is None:
            job["priority"] = ev.priority


def _progress(job: JobRow, ev: JobProgress, new: bool) -> None:
    if not _current(job, ev.retry) or is_terminal(job["status"]):
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
    if not _current(job, ev.retry) or next_status(job["status"], "completed") != "completed":
        return
    not_kept = ev.outcome == "not_kept"
    job.update(
        status="completed",
        progress=100.0,
        output_bucket=ev.output_bucket,
        output_key=ev.output_key,
        # an output not kept was never uploaded: the job names its key, and no file
        output_keys_json=encode([] if not_kept else ev.output_keys or [ev.output_key]).decode(),
        output_size=None if not_kept else ev.output_size,
        outcome=ev.outcome,
        keep_json=encode(ev.keep).decode() if ev.keep is not None else None,
        loudness_json=encode(ev.loudness).decode() if ev.loudness is not None else None,
        quality_json=_quality_json(ev),
        rendition_quality_json=encode(ev.rendition_quality).decode() if ev.rendition_quality else None,
        chosen_ladder_json=encode(ev.chosen_ladder).decode() if ev.chosen_ladder is not None else None,
        worker=ev.worker or job["worker"],
        attempts=max(job["attempts"], ev.attempt),
        error=None,
        failure_reason=None,
        finished_at=ev.at,
        started_at=job["started_at"] or (ev.at - (ev.elapsed or 0)),
    )


def _quality_json(ev: JobCompleted) -> str | None:
    """The output's quality as the row keeps it: the statistics, not a chunk's per-frame values (which
    only its parent needs, from the completion itself)."""
    quality = without_frames(ev.quality)
    return None if quality is None else encode(quality).decode()


def _playable(job: JobRow, ev: JobPlayable, new: bool) -> None:
    if not _current(job, ev.retry) or is_retryable(job["status"]):  # ended without its output
        return
    if job["playable_at"] is None or ev.at < job["playable_at"]:
        job.update(
            playable_at=ev.at,
            playable_key=ev.output_key,
            output_bucket=job["output_bucket"] or ev.output_bucket,
        )


def _playable_once_completed(job: JobRow) -> None:
    """A package that completed without a JobPlayable (not progressive, or not chunked) is playable
    from its completion: applied after every event, so whichever of its completion and its request
    comes first (its kind is the request's)."""
    if (
        job["kind"] == "package"
        and job["status"] == "completed"
        and job["playable_at"] is None
        and job["output_key"] is not None
    ):
        job.update(playable_at=job["finished_at"], playable_key=job["output_key"])


def _failed(job: JobRow, ev: JobFailed, new: bool) -> None:
    target = failed_status(ev.reason)
    if not _current(job, ev.retry) or next_status(job["status"], target) != target:
        return
    job.update(
        status=target,
        playable_at=None,
        playable_key=None,
        error=ev.error,
        failure_reason=ev.reason,
        worker=ev.worker or job["worker"],
        attempts=max(job["attempts"], ev.attempt),
        finished_at=ev.at,
    )


def _cancel(job: JobRow, ev: JobCancel, new: bool) -> None:
    if not _current(job, ev.retry) or next_status(job["status"], "cancelled") != "cancelled":
        return
    job.update(
        status="cancelled",
        playable_at=None,
        playable_key=None,
        error=job["error"] or "cancelled by request",
        failure_reason="cancelled",
        finished_at=ev.at,
    )


def _retried(job: JobRow, ev: JobRetried, new: bool) -> None:
    # The one way out of a terminal state: generation ev.retry starts (once; a repeat is a no-op).
    _current(job, ev.retry)


def _moved(job: JobRow, ev: JobMoved, new: bool) -> None:
    # The API moves queued jobs only; the row keeps the class of the latest move, in whatever order
    # moves and requests arrive.
    if job["moved_at"] is None or ev.at >= job["moved_at"]:
        job.update(priority=ev.priority, moved_at=ev.at)


_APPLY = {
    JobRequested: _requested,
    JobProgress: _progress,
    JobCompleted: _completed,
    JobPlayable: _playable,
    JobFailed: _failed,
    JobCancel: _cancel,
    JobRetried: _retried,
    JobMoved: _moved,
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
        _playable_once_completed(row)
        if row != before:
            row["updated_at"] = now
            changed.add(ev.job_id)
    return changed
