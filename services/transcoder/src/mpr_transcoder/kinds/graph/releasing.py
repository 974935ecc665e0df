"""A job graph's children go onto its class's queue a window at a time (:mod:`.release_window`), each
exactly once.

Where a graph's release stands is kept in its plan's KV bucket (``mpr-packages``) beside its plan (key
``<parent id>.released``): the request generation it counts for, how far its children are claimed
(``upto``) and how far they are published (``published``), written with compare-and-set only. A release
claims the next children before it publishes them and records them published after: two transcoders that
release at once never claim the same children (one compare-and-set fails; that one reads again and
counts the other's), and one that dies between its claim and its publication leaves ``published <
upto``, which the next release publishes first. Children keep their ``Nats-Msg-Id``, so a child
published twice (the dead transcoder's publication had gone through) is stored once.

Who releases: the transcoder that fans the parent out (the first window) and, once a child's completion
is recorded, the transcoder that completed it; on a redelivery too, when the child finds itself completed
(its transcoder died before it released: :meth:`.runner.JobGraph.child_completed` runs again). A graph
that has ended (failed, cancelled or completed) releases nothing more; a child's request of an older
generation than the release's releases nothing either."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mpr_common import subjects as s
from mpr_common.bus import publish_event, retry_transient
from mpr_common.codec import decode, encode
from mpr_common.events import JobCompleted, JobRequested
from mpr_common.jobstate import JobState

from .release_window import release_up_to

log = logging.getLogger("mpr.transcoder")


class ReleasedPlan(Protocol):
    """What a release reads of a graph's plan."""

    @property
    def parent(self) -> JobRequested: ...

    @property
    def jobs(self) -> list[JobRequested]: ...

    def msg_id(self, child: JobRequested) -> str: ...


class ReleaseMark(msgspec.Struct, kw_only=True):
    retry: int = 0  # the request generation whose children these are
    upto: int = 0  # the first children of the plan's order that are claimed …
    published: int = 0  # … and those of them that are published
    low: int = 0  # every child before it has completed (where a release starts reading states)
    # the furthest any generation's release claimed: the children after it never ran (0: not known, a
    # mark written before it was kept)
    ever: int = 0


def mark_key(package_id: str) -> str:
    return f"{package_id}.released"


class Releaser:
    """Releases job graphs' children onto their class's queue, ``floor`` at least outstanding each."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, job_state: JobState, floor: int) -> None:
        if floor < 1:
            raise ValueError(f"a release window of at least 1 child (not {floor})")
        self.js = js
        self.kv = kv
        self.job_state = job_state
        self.floor = floor

    async def idle_slots(self, cls: str) -> int:
        """Slots free for class ``cls`` now: the pulls waiting on its consumer. Unreadable: none (the
        floor still releases)."""
        try:
            info = await self.js.consumer_info(s.JOBS_STREAM, s.transcoders_durable(cls))
            return int(info.num_waiting or 0)
        except Exception as exc:
            log.debug("idle slots of %s unknown: %s", cls, exc)
            return 0

    async def release(self, plan: ReleasedPlan, retry: int, first: int = 0) -> int:
        """Publish the next children of ``plan`` (its request generation ``retry``) that its window has
        room for, its ``first`` children at least (its lead: :func:`.release_window.window`); returns how
        many this call released. Idempotent, and safe to run from any number of
        transcoders at once."""
        parent = plan.parent
        key = mark_key(parent.job_id)
        order = plan.jobs
        while True:
            mark, revision = await self._read(key)
            if mark is not None and mark.retry > retry:
                return 0  # a request of an older generation: the newer one releases its own children
            if mark is None or mark.retry < retry:
                mark = ReleaseMark(retry=retry, ever=mark.ever if mark is not None else 0)
            if await self.job_state.get(parent.job_id) is not None:
                return 0  # ended: failed, cancelled (nothing more runs) or completed (nothing is left)
            if mark.published < mark.upto:  # claimed by a release that did not get to publish them
                await self._publish(plan, order[mark.published : mark.upto], retry)
                mark = msgspec.structs.replace(mark, published=mark.upto)
                recorded = await self._cas(key, mark, revision)
                if recorded is None:
                    continue
                revision = recorded
            idle = await self.idle_slots(parent.priority)
            # What this release can see: from the first child not known finished to as far as it may
            # reach (its room is at most the largest of lead, floor and idle). A title's thousandth
            # completion reads a window's states, not a thousand; children beyond count as unfinished.
            end = min(len(order), mark.upto + max(first, self.floor, idle))
            seen = order[mark.low : end]
            entries = await asyncio.gather(*(self.job_state.read(c.job_id) for c in seen))
            ids = [c.job_id for c in order]
            finished = set(ids[: mark.low]) | {
                c.job_id for c, e in zip(seen, entries, strict=True) if isinstance(e.state, JobCompleted)
            }
            running = {c.job_id for c, e in zip(seen, entries, strict=True) if e.lease is not None}
            upto = release_up_to(ids, mark.upto, finished, running, self.floor, first, idle)
            if upto == mark.upto:
                return 0
            low = next((mark.low + i for i, c in enumerate(seen) if c.job_id not in finished), end)
            claimed = msgspec.structs.replace(mark, upto=upto, low=low, ever=max(mark.ever, upto))
            taken = await self._cas(key, claimed, revision)
            if taken is None:  # another transcoder released meanwhile: count again with its claim
                continue
            await self._publish(plan, order[mark.upto : upto], retry)
            # Lost to another release: it published the rest of this claim again (the same messages).
            await self._cas(key, msgspec.structs.replace(claimed, published=upto), taken)
            log.info(
                "released children %d-%d of %d (%d idle slots)",
                mark.upto + 1,
                upto,
                len(order),
                idle,
                extra={"job_id": parent.job_id},
            )
            return upto - mark.upto

    async def released(self, plan: ReleasedPlan) -> list[JobRequested]:
        """The children of ``plan`` that any of its generations released (in the plan's order): the
        others never ran and left nothing, so a discard need not look for them. Every child when the
        release's mark does not say."""
        mark, _ = await self._read(mark_key(plan.parent.job_id))
        jobs = plan.jobs
        return jobs[: mark.ever] if mark is not None and mark.ever else jobs

    async def _publish(self, plan: ReleasedPlan, children: list[JobRequested], retry: int) -> None:
        """Onto the package's class, as its request generation: a retried package's children as retries
        too (another ``Nats-Msg-Id`` than the earlier generation's)."""
        for child in children:
            if retry:
                child = msgspec.structs.replace(child, retry=retry)
            msg_id = plan.msg_id(child) + (f".r{retry}" if retry else "")
            await publish_event(self.js, s.child_subject(plan.parent.priority), child, msg_id=msg_id)

    async def _read(self, key: str) -> tuple[ReleaseMark | None, int]:
        try:
            entry = await retry_transient(lambda: self.kv.get(key), f"release of {key}")
        except KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        return decode(entry.value, ReleaseMark), entry.revision or 0

    async def _cas(self, key: str, mark: ReleaseMark, revision: int) -> int | None:
        """Write ``mark`` if the key is still at ``revision`` (0: absent); its new revision, or None when
        another release wrote first."""
        try:
            if not revision:
                return await self.kv.create(key, encode(mark))
            return await self.kv.update(key, encode(mark), last=revision)
        except KeyWrongLastSequenceError:
            return None
