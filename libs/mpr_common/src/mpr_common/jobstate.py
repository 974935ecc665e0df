"""The job-state KV entry (``mpr-job-state``): the transcoders' claim check, written when a job ends
or is cancelled, read before a delivered job is run; while it runs, the lease of the one run that may
end it (:class:`JobLease`); beside it, where a queued job waits (queue moves). Their encoding lives
here only."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, ServiceUnavailableError
from nats.js.kv import KeyValue

from .bus import TRANSIENT
from .codec import decode, encode
from .events import JobCompleted

log = logging.getLogger(__name__)
T = TypeVar("T")

_COMPLETED = b"completed:"
_CANCELLED = b"cancelled"
_FAILED = b"failed"
_RETRIED = b"retried:"  # + the current generation
_LEASE = b"lease:"  # + a Lease: the job runs, and who may end it
_READ_ATTEMPTS = 8  # about 9 s of backoff: longer than an election
_CAS_ROUNDS = 20  # compare-and-set attempts before giving up (only a storm of moves would need more)
# A bucket between leaders: no answer, or JetStream's 503 ("temporarily unavailable"). A lease's reads
# and writes ride it out: they decide whether a job runs, and a lost answer is read back.
UNAVAILABLE = (*TRANSIENT, ServiceUnavailableError)
# How long a run keeps trying to end its job from its lease while the bucket has no leader: a run that
# gave up would leave the job to run again once its lease lapsed.
END_PATIENCE = 120.0


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """The run of a job that holds it now. ``token`` names the run (a worker restarted under the same
    name holds nothing); ``seconds`` is how long the lease stands without a renewal, timed by whoever
    reads it on its own clock from the moment it saw this revision; ``expires`` (the holder's wall clock)
    is for people reading the entry: no decision compares two machines' clocks."""

    worker: str
    token: str
    seconds: float
    retry: int = 0
    expires: float = 0.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One read of a job's entry: how it ended (``state``, as :meth:`JobState.get` reads it without a
    generation), the generation that runs now, the lease of the run that holds it, and its revision
    (0: no entry)."""

    state: JobCompleted | str | None = None
    generation: int = 0
    lease: Lease | None = None
    revision: int = 0
    raw: bytes = b""


async def _through_election(op: Callable[[], Awaitable[T]], what: str) -> T:
    """``op`` (a read, or an idempotent write) again while the bucket has no leader, backing off
    (0.2, 0.4, … 2 s: about 9 s in all)."""
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            return await op()
        except UNAVAILABLE as exc:
            if attempt == _READ_ATTEMPTS:
                raise
            log.warning("%s failed (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


class JobState:
    """``await state.get(job_id)`` → ``None`` | ``"cancelled"`` | ``"failed"`` | a :class:`JobCompleted`.

    Any of those is terminal: a delivered job that has one is never run again (a replayed stream, a
    re-created consumer). A retry replaces it with a marker of the generation that runs now (read as
    ``None``, or as ``"superseded"`` by a request of an older generation)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def _put(self, job_id: str, value: bytes) -> None:
        # Written before the job's message is acked: retried through a leader election rather than
        # leaving a finished job to be delivered and run again.
        await _through_election(lambda: self.kv.put(job_id, value), f"job state of {job_id}")

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
        retried since, as a newer generation; that request must not run. A job that runs (under a
        lease) has not ended: None."""
        try:
            entry = await self.read(job_id)
        except Exception as exc:  # not a valid KV key: such a job fails validation anyway
            log.debug("job state %r: %s", job_id, exc)
            return None
        if entry.state is None and retry is not None and retry != entry.generation:
            # Older: retried since. Newer: no retry started it (only the API's retry path marks a
            # generation, before it publishes the request): a made-up ``retry`` published onto NATS.
            return "superseded"
        return entry.state

    async def read(self, job_id: str) -> Entry:
        """The job's entry as it is now (retried through a leader election)."""
        try:
            found = await _through_election(lambda: self.kv.get(job_id), f"job state of {job_id}")
        except KeyNotFoundError:  # also a deleted one (KeyDeletedError)
            return Entry()
        value, revision = found.value or b"", int(getattr(found, "revision", 0) or 0)
        if value.startswith(_COMPLETED):
            return Entry(decode(value[len(_COMPLETED) :], JobCompleted), revision=revision, raw=value)
        if value.startswith(_RETRIED):  # not ended: the current generation runs
            return Entry(generation=int(value[len(_RETRIED) :] or 0), revision=revision, raw=value)
        if value.startswith(_LEASE):
            lease = decode(value[len(_LEASE) :], Lease)
            return Entry(generation=lease.retry, lease=lease, revision=revision, raw=value)
        state = "cancelled" if value == _CANCELLED else "failed" if value == _FAILED else None
        return Entry(state, revision=revision, raw=value)


# --- the lease of the run that may end a job ---------------------------------------------------------
# A job's message can be delivered again while it runs (its in-progress acks lost in a leader election,
# a worker frozen past ack_wait). Before a transcoder starts a job it takes the job's entry with a
# compare-and-set (a lease naming the run), renews it while FFmpeg runs, and ends the job with a
# compare-and-set from its own revision: two runs can never both end a job, whatever the timing. A
# delivery that finds another run's lease live waits (its message kept in progress) until the job
# ends or the lease is left unrenewed for its whole duration, timed on the reader's own clock; then it
# takes the lease over and runs the job. The holder stops before its lease could be taken: it gives up
# once ``seconds * (1 - LEASE_SAFETY)`` have passed since the start of its last renewal that succeeded.
LEASE_SAFETY = 0.25  # the part of a lease its holder gives up early: room to stop FFmpeg, clock rates
LeaseVerdict = Literal["taken", "held", "ended", "superseded"]
Renewal = Literal["renewed", "unsure", "lost", "ended"]


class JobLease:
    """One run's lease on one job: :meth:`acquire` (again while another run holds it), :meth:`renew`
    while it runs, then :meth:`complete` / :meth:`fail` (compare-and-set from the lease) or
    :meth:`release` (the job is handed back unended). ``clock`` is monotonic seconds; ``wall`` only
    fills in the entry's ``expires`` for people."""

    def __init__(
        self,
        state: JobState,
        job_id: str,
        *,
        worker: str,
        retry: int,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.state, self.job_id, self.worker, self.retry, self.seconds = state, job_id, worker, retry, seconds
        self.token = uuid.uuid4().hex
        self.clock, self.wall = clock, wall
        self.revision = 0  # of our lease, once taken
        self.valid_until = 0.0  # on our clock: the start of the last confirmed write + seconds
        self.holder: Lease | None = None  # another run's lease, as last read (while "held")
        self.found: Entry = Entry()  # what the last read that did not find our lease found
        self._unconfirmed: float | None = None  # the start of our first write not yet confirmed
        self._seen: tuple[int, float] | None = None  # another's lease: (revision, when first seen)

    @property
    def key(self) -> str:
        return self.job_id

    def deadline(self) -> float:
        """When (our clock) the holder must have stopped unless a renewal succeeds first."""
        return self.valid_until - self.seconds * LEASE_SAFETY

    def expired(self) -> bool:
        return self.clock() >= self.deadline()

    def _value(self) -> bytes:
        lease = Lease(
            worker=self.worker,
            token=self.token,
            seconds=self.seconds,
            retry=self.retry,
            expires=round(self.wall() + self.seconds, 3),
        )
        return _LEASE + encode(lease)

    def _ours(self, entry: Entry) -> bool:
        return entry.lease is not None and entry.lease.token == self.token

    def _confirmed(self, revision: int, began: float | None) -> None:
        """Our write stands at ``revision``: the one begun at ``began`` when its answer came, else the
        earliest write still unconfirmed (it may be any of them: count from the first)."""
        since = began if began is not None else self._unconfirmed
        assert since is not None
        self.revision, self.valid_until, self._unconfirmed = revision, since + self.seconds, None

    def _left_unrenewed(self, entry: Entry) -> bool:
        """Has another run's lease stayed at this revision for its whole duration, on our clock?"""
        assert entry.lease is not None
        now = self.clock()
        if self._seen is None or self._seen[0] != entry.revision:
            self._seen = (entry.revision, now)
        return now - self._seen[1] >= entry.lease.seconds

    async def _write(self, value: bytes, revision: int) -> int:
        """Compare-and-set ``value`` from ``revision`` (0: no entry): its new revision, or 0 when the
        entry changed meanwhile or the answer was lost (read back before anything else is decided)."""
        try:
            if revision:
                return int(await self.state.kv.update(self.key, value, last=revision))
            return int(await self.state.kv.create(self.key, value))
        except KeyWrongLastSequenceError:
            return 0
        except UNAVAILABLE as exc:
            log.warning("job state of %s: %s; reading it back", self.job_id, type(exc).__name__)
            return 0

    async def acquire(self) -> LeaseVerdict:
        """``taken``: this run holds the job now; ``held``: another run's lease is live (ask again
        later: it is taken over once left unrenewed for its duration); ``ended`` or ``superseded``:
        the job must not run (read it again)."""
        for _ in range(_CAS_ROUNDS):
            entry = await self.state.read(self.job_id)
            if self._ours(entry):  # a write of ours whose answer was lost
                self._confirmed(entry.revision, None)
                return "taken"
            self._unconfirmed = None  # none of our writes landed
            self.found = entry
            if entry.state is not None:
                return "ended"
            if entry.generation > self.retry:
                return "superseded"
            lease = entry.lease
            if lease is not None and lease.retry == self.retry and not self._left_unrenewed(entry):
                self.holder = lease
                return "held"
            began = self.clock()
            if self._unconfirmed is None:
                self._unconfirmed = began
            revision = await self._write(self._value(), entry.revision)
            if revision:
                self._confirmed(revision, began)
                self.holder = None
                return "taken"
        raise RuntimeError(f"job state of {self.job_id}: too much contention")

    async def renew(self) -> Renewal:
        """``renewed``; ``unsure`` (no answer: the holder stops once :meth:`expired`); ``lost`` (another
        run took it, or the job was retried since); ``ended`` (cancelled or failed meanwhile: see
        :attr:`found`)."""
        began = self.clock()
        if self._unconfirmed is None:
            self._unconfirmed = began
        try:
            revision = await self.state.kv.update(self.key, self._value(), last=self.revision)
        except KeyWrongLastSequenceError:
            entry = await self.state.read(self.job_id)
            if self._ours(entry):  # an earlier renewal landed, its answer lost
                self._confirmed(entry.revision, None)
                return "renewed"
            self.found = entry
            return "ended" if entry.state is not None else "lost"
        except UNAVAILABLE as exc:
            log.warning("lease of %s not renewed (%s)", self.job_id, type(exc).__name__)
            return "unsure"
        self._confirmed(int(revision), began)
        return "renewed"

    async def _end(self, value: bytes) -> bool:
        """Replace our lease with ``value`` (compare-and-set): False when another run holds the job or
        it ended otherwise meanwhile; then this run must not report it. Tried through elections for up
        to END_PATIENCE: nobody else can end the job meanwhile, and giving up would run it again."""
        give_up = self.clock() + END_PATIENCE
        attempt = 0
        while True:
            attempt += 1
            if await self._write(value, self.revision):
                return True
            try:
                entry: Entry | None = await self.state.read(self.job_id)
            except UNAVAILABLE:
                entry = None
            if entry is not None:
                if entry.raw == value:  # our own write, its answer lost
                    return True
                if not self._ours(entry):
                    self.found = entry
                    return False
                self.revision = entry.revision  # a renewal of ours landed: its answer was lost
            if self.clock() >= give_up:
                raise RuntimeError(f"job state of {self.job_id}: not written")
            await asyncio.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))

    async def complete(self, done: JobCompleted) -> bool:
        return await self._end(_COMPLETED + encode(done))

    async def fail(self) -> bool:
        return await self._end(_FAILED)

    async def cancel(self) -> bool:
        return await self._end(_CANCELLED)

    async def release(self) -> bool:
        """Hand the job back unended (a transient failure, a shutdown): the next delivery takes it at
        once rather than after the lease runs out. False when it is not ours (any more) or the bucket
        did not answer: an unreleased lease only delays the next run."""
        if not self.revision:
            return False
        try:
            await self.state.kv.update(self.key, _RETRIED + str(self.retry).encode(), last=self.revision)
        except Exception as exc:
            log.info("lease of %s not released (%s)", self.job_id, type(exc).__name__)
            return False
        finally:
            self.revision = 0
        return True


# --- where a queued job waits: the claim check of a queue move ---------------------------------------
# A move (POST /api/jobs/{id}/move) publishes a copy of the job's request on its new class's subject; the
# copy left behind must not run too. Key ``queue.<job_id>`` of the same bucket (job ids hold no dots, so
# it never meets a job's own key) names the copy that may run, and the transcoder that starts a job marks
# it started with a compare-and-set: whatever the order of deliveries, moves and crashes, one copy runs.
QUEUE_MOVE_HEADER = "Mpr-Queue-Move"  # on a moved copy: its move number (1 for the first move)
_QUEUE_KEY = "queue."


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

    def __init__(self, kv: KeyValue) -> None:
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
            entry = await _through_election(
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
        except UNAVAILABLE as exc:
            log.warning("queue place of %s: %s; reading it back", job_id, type(exc).__name__)
            return False
        return True
