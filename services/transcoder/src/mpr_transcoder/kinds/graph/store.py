"""A job graph's plan, made once and kept in the ``mpr-packages`` KV bucket under its parent's job id: a
redelivered parent reuses it, and a child runs only as its parent's plan describes it."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mpr_common.bus import retry_transient
from mpr_common.codec import decode, encode
from mpr_common.events import JobRequested


class GraphPlan(Protocol):
    """What the graph runner needs of a plan: its parent, its children in publication order, a child by
    id, and each child's ``Nats-Msg-Id`` (carrying a nonce nobody can guess, so that no look-alike
    published first is kept by de-duplication in place of the real child)."""

    @property
    def parent(self) -> JobRequested: ...

    @property
    def jobs(self) -> list[JobRequested]: ...

    def child(self, job_id: str) -> JobRequested | None: ...

    def msg_id(self, child: JobRequested) -> str: ...


P = TypeVar("P", bound=GraphPlan)

KEPT_PLANS = 64  # decoded plans a transcoder keeps (the graphs it is working on: a few at a time)


class PlanStore(Generic[P]):
    """Plans of one type in the KV bucket, keyed by the parent's job id."""

    def __init__(self, kv: KeyValue, plan_type: type[P], kept: int = KEPT_PLANS) -> None:
        self.kv = kv
        self.plan_type = plan_type
        # The plans read last, by parent id, with the KV revision they were read at: every event of a
        # graph reads its plan, and a decoded plan keeps what it derived once (its children, O(chunks)).
        # The revision is read each time (one KV get): a plan deleted and made again is never served stale.
        self._kept: OrderedDict[str, tuple[int, P]] = OrderedDict()
        self._room = kept

    async def get(self, parent_id: str) -> P | None:
        try:
            entry = await retry_transient(lambda: self.kv.get(parent_id), f"graph plan {parent_id}")
        except KeyNotFoundError:
            self._kept.pop(parent_id, None)
            return None
        revision = entry.revision or 0
        kept = self._kept.get(parent_id)
        if kept is not None and kept[0] == revision and revision:
            self._kept.move_to_end(parent_id)
            return kept[1]
        plan = decode(entry.value or b"", self.plan_type)
        self._kept[parent_id] = (revision, plan)
        self._kept.move_to_end(parent_id)
        while len(self._kept) > self._room:
            self._kept.popitem(last=False)
        return plan

    async def create(self, plan: P) -> P:
        """Store ``plan`` unless one exists (a redelivered parent): returns the plan that holds."""
        parent_id = plan.parent.job_id
        try:
            await retry_transient(lambda: self.kv.create(parent_id, encode(plan)), f"graph plan {parent_id}")
            return plan
        except KeyWrongLastSequenceError:
            existing = await self.get(parent_id)
            assert existing is not None
            return existing
