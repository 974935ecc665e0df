"""The job-state KV entry (``mpr-job-state``): the transcoders' claim check, written when a job ends
or is cancelled, read before a delivered job is run; beside it, where a queued job waits (queue moves).
Their encoding lives here only."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from .bus import TRANSIENT, retry_transient
from .codec import decode, encode
from .events import JobCompleted

log = logging.getLogger(__name__)

_COMPLETED = b"completed:"
_CANCELLED = b"cancelled"
_FAILED = b"failed"
_RETRIED = b"retried:"  # + the current generation


class JobState:
    """``await state.get(job_id)`` → ``None`` | ``"cancelled"`` | ``"failed"`` | a :class:`JobCompleted`.

    Any of those is terminal: a delivered job that has one is never run again (a replayed stream, a
    re-created consumer). A retry replaces it with a marker of the generation that runs now (read as
    ``None``, or as ``"superseded"`` by a request of an older generation)."""

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

    async def retried(self, job_id: str, retry: int) -> None:
        """The job runs again as generation ``retry`` (its n-th retry): how it ended is forgotten, the one
        way back from a terminal state. A request of an older generation delivered later is stale."""
        await self._put(job_id, _RETRIED + str(retry).encode())

    async def get(self, job_id: str, retry: int | None = None) -> JobCompleted | str | None:
        """With ``retry`` (the delivered request's generation): ``"superseded"`` when the job has been
        retried since, as a newer generation; that request must not run."""
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
        if value.startswith(_RETRIED):  # not ended: the current generation runs
            current = int(value[len(_RETRIED) :] or 0)
            return "superseded" if retry is not None and retry < current else None
        return "failed" if value == _FAILED else None


# --- where a queued job waits: the claim check of a queue move ---------------------------------------
# A move (POST /api/jobs/{id}/move) publishes a copy of the job's request on its new class's subject; the
# copy left behind must not run too. Key ``queue.<job_id>`` of the same bucket (job ids hold no dots, so
# it never meets a job's own key) names the copy that may run, and the transcoder that starts a job marks
# it started with a compare-and-set: whatever the order of deliveries, moves and crashes, one copy runs.
QUEUE_MOVE_HEADER = "Mpr-Queue-Move"  # on a moved copy: its move number (1 for the first move)
_QUEUE_KEY = "queue."
_CAS_ROUNDS = 20  # compare-and-set attempts before giving up (only a storm of moves would need more)


def move_number(headers: Mapping[str, str] | None) -> int:
    """Which move of its job a request message is, from its headers (0: as first published)."""
    try:
        return max(0, int((headers or {}).get(QUEUE_MOVE_HEADER, 0)))
    except ValueError:
        return 0


class QueuePlace(msgspec.Struct, frozen=True, kw_only=True):
    """One copy of a job's request: its queue class, its move number (0: as first published) and its
    request generation (``JobRequested.retry``). Stored: the copy that may run, and whether it has."""

    priority: str
    move: int = 0
    retry: int = 0
    started: bool = False
    seq: int | None = None  # its stream sequence, when known (a moved copy)

    def same_copy(self, other: QueuePlace) -> bool:
        return (self.priority, self.move, self.retry) == (other.priority, other.move, other.retry)


ClaimVerdict = Literal["run", "claim", "skip"]


def claim_verdict(live: QueuePlace | None, copy: QueuePlace) -> ClaimVerdict:
    """May a delivered ``copy`` start, given the stored place ``live``? ``claim``: yes, once it is
    stored as started; ``run``: yes, it is the started copy (a redelivery); ``skip``: another copy runs.
    The newest copy wins until one has started; a newer request generation (a retry) replaces the rest."""
    if live is None or live.retry < copy.retry:
        return "claim"
    if live.retry > copy.retry:
        return "skip"
    if live.same_copy(copy):
        return "run" if live.started else "claim"
    return "claim" if copy.move > live.move and not live.started else "skip"


class MoveRefused(Exception):
    """The job cannot move (it has started, or moved meanwhile): a conflict for the client."""


def move_target(live: QueuePlace | None, found: QueuePlace, to: str) -> QueuePlace | None:
    """The place to store when the waiting copy ``found`` moves to class ``to`` (its copy is move
    ``found.move + 1``), or ``None`` when ``live`` records that very move already. Raises
    :class:`MoveRefused` when the job has started or ``found`` is no longer the copy that may run."""
    target = QueuePlace(priority=to, move=found.move + 1, retry=found.retry)
    if live is not None and live.same_copy(target):
        return None
    verdict = claim_verdict(live, found)
    if verdict == "run" or (live is not None and live.started and live.retry >= found.retry):
        raise MoveRefused("it has started")
    if verdict == "skip":
        raise MoveRefused("it moved meanwhile")
    return target


class QueuePlaces:
    """``queue.<job_id>`` entries of the job-state bucket: written by the API when a job moves and by the
    transcoder that starts it; read by both."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    async def get(self, job_id: str) -> QueuePlace | None:
        return (await self._read(job_id))[0]

    async def claim(self, job_id: str, copy: QueuePlace) -> bool:
        """Mark ``copy`` started if it may start (see :func:`claim_verdict`); False: skip it."""
        for _ in range(_CAS_ROUNDS):
            live, revision = await self._read(job_id)
            verdict = claim_verdict(live, copy)
            if verdict != "claim":
                return verdict == "run"
            started = msgspec.structs.replace(copy, started=True)
            if await self._swap(job_id, started, revision):
                return True
        raise RuntimeError(f"queue place of {job_id}: too much contention")

    async def move(self, job_id: str, found: QueuePlace, to: str, seq: int | None) -> QueuePlace:
        """Record that the job's copy ``found`` moved to class ``to`` (the new copy published at stream
        sequence ``seq``). Idempotent; raises :class:`MoveRefused`."""
        for _ in range(_CAS_ROUNDS):
            live, revision = await self._read(job_id)
            target = move_target(live, found, to)
            if target is None:
                assert live is not None
                return live
            target = msgspec.structs.replace(target, seq=seq)
            if await self._swap(job_id, target, revision):
                return target
        raise RuntimeError(f"queue place of {job_id}: too much contention")

    async def _read(self, job_id: str) -> tuple[QueuePlace | None, int]:
        try:
            entry = await retry_transient(
                lambda: self.kv.get(_QUEUE_KEY + job_id), f"queue place of {job_id}"
            )
        except KeyNotFoundError:  # also a deleted one (KeyDeletedError)
            return None, 0
        return decode(entry.value or b"", QueuePlace), int(entry.revision or 0)

    async def _swap(self, job_id: str, place: QueuePlace, revision: int) -> bool:
        """Store ``place`` if the entry is still at ``revision`` (0: absent). A write whose answer was
        lost is read back on the next round, so it is never applied twice."""
        key, value = _QUEUE_KEY + job_id, encode(place)
        try:
            if revision:
                await self.kv.update(key, value, last=revision)
            else:
                await self.kv.create(key, value)
        except KeyWrongLastSequenceError:
            return False
        except TRANSIENT as exc:
            log.warning("queue place of %s: %s; reading it back", job_id, type(exc).__name__)
            return False
        return True
