"""The rules on job statuses, written once: which statuses end a job, which of those a retry may start
again, and which status a failure ends in. The API, the catalog, the transcoders and the CLI import
them; the console receives them from the API."""

from __future__ import annotations

from typing import Literal, get_args

from .events import FailureReason, JobStatus

TerminalStatus = Literal["completed", "failed", "cancelled"]
# A job in one of these never runs again on its own: only a retry (a new generation) starts it.
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(get_args(TerminalStatus))
RetryableStatus = Literal["failed", "cancelled"]
# What POST /api/jobs/{id}/retry accepts: a job that ended without its output.
RETRYABLE_STATUSES: tuple[JobStatus, ...] = get_args(RetryableStatus)
# Statuses by how far a job has come: a job never goes back to a lower rank (events arrive out of order).
STATUS_RANK: dict[JobStatus, int] = {"queued": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


def is_retryable(status: str | None) -> bool:
    return status in RETRYABLE_STATUSES


def failed_status(reason: FailureReason | str | None) -> Literal["failed", "cancelled"]:
    """The status a job ends in when it fails for ``reason``: a failure for reason ``cancelled`` is a
    cancel (the job stopped because someone asked), any other reason a failure."""
    return "cancelled" if reason == "cancelled" else "failed"


def next_status(current: str | None, incoming: str) -> str:
    """Monotonic transition: never leave a terminal state, never go back to an earlier one.

    Events may arrive out of order (a completion before the last progress report, a request
    recorded after its first progress): the result depends only on the set of events seen.
    """
    if current is None:
        return incoming
    if is_terminal(current):
        return current
    return incoming if STATUS_RANK[incoming] >= STATUS_RANK[current] else current  # type: ignore[index]
