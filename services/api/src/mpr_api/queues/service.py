"""Queue control: each class's state (paused, waiting, in flight, age of the oldest waiting request),
pausing and resuming classes, and moving a queued job to another class.

Pausing is a flag per class in the queues KV bucket that the transcoders follow: they stop fetching
that class, and what runs goes on. A move publishes the job's waiting request again on the new class's
subject, then records the move (mpr_common.jobstate.QueuePlaces), then announces it (``JobMoved``); the
copy left behind is skipped when it is delivered, and whatever happens between those steps one copy
runs (docs/queues.md)."""

from __future__ import annotations

import functools
import logging
from typing import cast

import msgspec
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, publish_event, retry_transient
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.errors import Conflict, Unavailable
from mpr_common.events import PRIORITIES, JobMoved, JobRequested, Priority
from mpr_common.jobs import job_identity
from mpr_common.jobstate import (
    QUEUE_MOVE_HEADER,
    MoveRefused,
    QueuePlace,
    QueuePlaces,
    claim_verdict,
    move_number,
)

from ..http.settings import HttpSettings
from ..jobs.schemas import JobOut
from ..jobs.service import JobService
from .waiting import StoredMsg, age, find_waiting

log = logging.getLogger("mpr.api")

RUNNING = b"running"  # a resumed class's entry (anything but s.QUEUE_PAUSED runs)
# Waiting requests of a class read to find the copies that moves left behind: a left-behind copy is
# not waiting work (it is skipped when delivered), so neither ``pending`` nor the head's age counts it.
# Past this many, a backlog's count may include a few of them (one each, in a queue that long).
LEFT_BEHIND_WALK = 100


class QueueState(msgspec.Struct, kw_only=True):
    priority: str
    paused: bool
    # Requests not yet delivered to a transcoder, less the copies moves left behind (skipped when they
    # are delivered); None when the class's consumer is missing (run mpr-setup).
    pending: int | None
    in_flight: int | None  # delivered and not yet acknowledged: running, or waiting to be retried
    oldest_waiting_seconds: float | None  # age of the oldest request not yet delivered
    consumer: str  # the durable consumer its transcoders pull (what KEDA scales on)


class Queues(msgspec.Struct, kw_only=True):
    queues: list[QueueState]


class MoveJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    priority: Priority


def moved_msg_id(job_id: str, to: str, move: int, retry: int) -> str:
    """The moved copy's de-duplication id: a repeated call publishes it once."""
    return f"{job_id}.moved.{to}.{move}" + (f".r{retry}" if retry else "")


class QueueService:
    def __init__(
        self, settings: HttpSettings, nc: Client, flags_kv: KeyValue, places: QueuePlaces, jobs: JobService
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.flags_kv = flags_kv
        self.places = places
        self.jobs = jobs

    # --- state, pause, resume ------------------------------------------------------------------------
    async def states(self) -> Queues:
        return Queues(queues=[await self._state(p) for p in PRIORITIES])

    async def _paused(self, cls: str) -> bool:
        try:
            return (await self.flags_kv.get(cls)).value == s.QUEUE_PAUSED
        except KeyNotFoundError:
            return False

    async def _state(self, cls: str) -> QueueState:
        durable = s.transcoders_durable(cls)
        state = QueueState(
            priority=cls,
            paused=await self._paused(cls),
            pending=None,
            in_flight=None,
            oldest_waiting_seconds=None,
            consumer=durable,
        )
        try:
            info = await self.js.consumer_info(s.JOBS_STREAM, durable)
        except NotFoundError:
            return state
        state.pending, state.in_flight = info.num_pending or 0, info.num_ack_pending or 0
        if state.pending:
            after = info.delivered.stream_seq or 0
            left, head = await self._left_behind(cls, after)
            state.pending = max(0, state.pending - left)
            child = await self._read(after + 1, s.child_subject(cls))
            heads = [m for m in (head, child) if m is not None]
            if state.pending and heads:
                state.oldest_waiting_seconds = round(age(min(heads, key=lambda m: m.seq)), 3)
        return state

    async def _read(self, seq: int, subject: str) -> StoredMsg | None:
        try:
            return cast(StoredMsg, await self.js.get_msg(s.JOBS_STREAM, seq, subject=subject, next=True))
        except NotFoundError:
            return None

    async def _left_behind(self, cls: str, after: int) -> tuple[int, StoredMsg | None]:
        """Among the first :data:`LEFT_BEHIND_WALK` requests of class ``cls`` after stream sequence
        ``after``: how many are copies a move left behind, and the first that is not one (the head of
        the queue; None when there is none within the walk)."""
        subject, seq, left = s.requested_subject(cls), after + 1, 0
        places: dict[str, QueuePlace | None] = {}
        head = None
        for _ in range(LEFT_BEHIND_WALK):
            msg = await self._read(seq, subject)
            if msg is None:
                return left, head
            if await self._is_left_behind(msg, cls, places):
                left += 1
            elif head is None:
                head = msg
            seq = msg.seq + 1
        return left, head if head is not None else await self._read(seq, subject)

    async def _is_left_behind(self, msg: StoredMsg, cls: str, places: dict[str, QueuePlace | None]) -> bool:
        """Is ``msg`` a copy another copy of its job replaced (by a move), so that it will be skipped?"""
        try:
            req = decode(msg.data or b"", JobRequested)
        except (DecodeError, ValidationError):
            return False
        job_id = job_identity(req, (msg.headers or {}).get(MSG_ID), msg.seq).job_id
        if job_id not in places:
            places[job_id] = await self.places.get(job_id)
        live = places[job_id]
        if live is None:
            return False  # never moved: the one copy, and it waits
        copy = QueuePlace(priority=cls, move=move_number(msg.headers), retry=req.retry)
        return claim_verdict(live, copy) == "skip"

    async def set_paused(self, classes: list[str], paused: bool) -> Queues:
        value = s.QUEUE_PAUSED if paused else RUNNING
        for cls in classes:
            await retry_transient(functools.partial(self.flags_kv.put, cls, value), f"queue flag of {cls}")
            log.info("queue class %s %s", cls, "paused" if paused else "resumed")
        return await self.states()

    # --- move -----------------------------------------------------------------------------------------
    async def move(self, job_id: str, to: Priority) -> JobOut:
        """Move a queued job to class ``to``; returns it as JetStream has stored it (the catalog follows).
        404 for an unknown job; 409 unless it waits in a transcoders' queue (queued, not a package's
        child, not started meanwhile); 503 when the queue did not confirm (repeating the call is safe)."""
        view = (await self.jobs.get(job_id)).job
        if view.parent_id is not None:
            raise Conflict(f"job {job_id} is a child of package {view.parent_id}: move the package")
        if view.status != "queued":
            raise Conflict(f"job {job_id} is {view.status}: only a queued job moves")
        place = await self.places.get(job_id)
        current = place if place is not None and place.retry == view.retries else None
        if current is not None and current.started:
            raise Conflict(f"job {job_id} has started: only a queued job moves")
        cls = current.priority if current is not None else view.priority
        if cls == to:
            return self.jobs.out(view)
        # created_at: the request's requested_at; updated_at: when the catalog last changed the job,
        # after its request was stored
        waiting = await find_waiting(
            self.js, job_id, cls, view.retries, view.created_at, view.updated_at + 1.0, current
        )
        if waiting is None:
            raise Conflict(
                f"job {job_id} is not waiting in the {cls} queue: it has just started, or it runs "
                "outside the transcoders (Lambda, Step Functions)"
            )
        found = waiting.place
        move = found.move + 1
        copy = msgspec.structs.replace(waiting.request, priority=to)
        try:
            ack = await publish_event(
                self.js,
                s.requested_subject(to),
                copy,
                msg_id=moved_msg_id(job_id, to, move, found.retry),
                headers={QUEUE_MOVE_HEADER: str(move)},
                attempts=3,
            )
            # Recorded after the copy is stored: a crash in between leaves two copies and no record,
            # of which the first delivered runs (the record only steers which one).
            await self.places.move(job_id, found, to, ack.seq)
        except MoveRefused as exc:
            raise Conflict(f"job {job_id} cannot move: {exc}") from None
        except Exception as exc:
            raise Unavailable(
                f"the job queue did not confirm the move of job {job_id} ({str(exc) or type(exc).__name__}): "
                "repeat the call"
            ) from None
        await publish_event(
            self.js,
            s.JOB_MOVED,
            JobMoved(job_id=job_id, priority=to),
            msg_id=f"moved-{moved_msg_id(job_id, to, move, found.retry)}",
            attempts=3,
        )
        log.info("job moved from %s to %s", cls, to, extra={"job_id": job_id})
        # What JetStream has stored (the catalog follows): the job, queued in its new class.
        return self.jobs.out(msgspec.structs.replace(view, priority=to))
