"""The job-state KV entry (``mpr-job-state``): the transcoders' claim check, written when a job ends
or is cancelled, read before a delivered job is run. Its encoding lives here only."""

from __future__ import annotations

import logging
from typing import Any

from nats.js.errors import KeyNotFoundError

from .bus import retry_transient
from .codec import decode, encode
from .events import JobCompleted

log = logging.getLogger(__name__)

_COMPLETED = b"completed:"
_CANCELLED = b"cancelled"
_FAILED = b"failed"


class JobState:
    """``await state.get(job_id)`` → ``None`` | ``"cancelled"`` | ``"failed"`` | a :class:`JobCompleted`.

    Any entry is terminal: a delivered job that has one is never run again (a replayed stream, a
    re-created consumer)."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    async def _put(self, job_id: str, value: bytes) -> None:
        # Written before the job's message is acked: retried through a leader election rather than
        # leaving a finished job to be delivered and run again.
        await retry_transient(lambda: self.kv.put(job_id, value), f"job state of {job_id}")

    async def completed(self, done: JobCompleted) -> None:
        await self._put(done.job_id, _COMPLETED + encode(done))

    async def cancelled(self, job_id: str) -> None:
        await self._put(job_id, _CANCELLED)

    async def failed(self, job_id: str) -> None:
        await self._put(job_id, _FAILED)

    async def get(self, job_id: str) -> JobCompleted | str | None:
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return None
        except Exception as exc:  # not a valid KV key: such a job fails validation anyway
            log.debug("job state %r: %s", job_id, exc)
            return None
        value = entry.value or b""
        if value.startswith(_COMPLETED):
            return decode(value[len(_COMPLETED) :], JobCompleted)
        if value == _CANCELLED:
            return "cancelled"
        return "failed" if value == _FAILED else None
