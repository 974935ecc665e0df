"""A job graph's life on the transcoders, whatever its kind: fan-out of its parent into child jobs, the
checks a child passes before it runs, fan-in as its children complete, and its end.

- **Plan once.** The transcoder that takes the parent plans it on its source's probe and keeps the plan
  in KV (:mod:`.store`); a redelivered parent reuses it.
- **Fan-out.** Children are published a window at a time (:mod:`.releasing`, :mod:`.release_window`):
  the fan-out releases the first ones, each completion the next, so a long title never holds its class's
  queue. Each goes out with ``Nats-Msg-Id`` = its id and the plan's nonce: a redelivery publishes
  nothing twice.
- **Checks.** A delivered child runs only as the plan describes it (:meth:`JobGraph.verdict`), never
  once its parent has ended.
- **Fan-in.** Each completion publishes what the parent has now under the graph's lock (:mod:`.lock`):
  when every child has completed, the kind's :meth:`~JobGraph.complete` (a package's manifests, a
  transcode's join) and the parent's completion, exactly once; before that, the kind's
  :meth:`~JobGraph.grow` (a progressive package's playlists). A redelivered child comes back here and
  repeats it harmlessly.
- **Failure and cancel.** A child that fails for good (or is cancelled) ends its parent with its reason,
  and a ``JobCancel`` of the parent stops its other children (queued ones see the parent's state before
  they start); the kind's :meth:`~JobGraph.discard` removes what the graph wrote, again each time a
  child ends afterwards.
- **Progress.** Each child carries its share of the work (``weight``): the catalog reads the parent's
  progress from its children's.

A kind's graph is a subclass that says what is its own: its plan (:meth:`~JobGraph.make_plan`,
:meth:`~JobGraph.as_planned`), the keys its parent claims before fan-out (:meth:`~JobGraph.claims`),
:meth:`~JobGraph.complete`, :meth:`~JobGraph.grow`, :meth:`~JobGraph.discard`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import ClassVar, Generic

import msgspec
from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.events import (
    FailureReason,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    MediaInfo,
)
from mpr_common.job_status import failed_status
from mpr_common.jobs import JobRequestError, outcome_id
from mpr_common.jobstate import JobState
from mpr_common.outputs import OutputOwners
from mpr_common.s3_client import S3Client
from mpr_common.storage import guess_content_type

from ...settings import DEFAULT_RELEASE_WINDOW
from .lock import PublishingLock
from .releasing import Releaser
from .store import P, PlanStore

log = logging.getLogger("mpr.transcoder")

_COMPLETIONS_KEPT = 64  # graphs whose children's completions a transcoder remembers


@dataclass(frozen=True, slots=True)
class ChildVerdict:
    """What a delivered child job may do: run ``job`` (as planned), or end as cancelled because its
    parent ended (``ended`` names how)."""

    job: JobRequested
    ended: str | None = None


class JobGraph(Generic[P]):
    """The generic part of a job graph; a kind's graph subclasses it (see the module's docstring)."""

    noun: ClassVar[str] = "job"  # the parent's kind, as messages name it
    child_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        js: JetStreamContext,
        s3: S3Client,
        job_state: JobState,
        store: PlanStore[P],
        bucket_out: str,
        instance: str,
        owners: OutputOwners | None = None,
        window: int = DEFAULT_RELEASE_WINDOW,
    ) -> None:
        self.lock = PublishingLock(store.kv, instance)
        self.releaser = Releaser(js, store.kv, job_state, window)
        self.js = js
        self.s3 = s3
        self.job_state = job_state
        self.store = store
        self.bucket_out = bucket_out
        self.instance = instance
        self._owners = owners  # bound on first use when not given
        self._completed: dict[str, dict[str, JobCompleted]] = {}  # see _completions

    # --- what a kind's graph says --------------------------------------------------------------------

    def make_plan(self, parent: JobRequested, info: MediaInfo) -> P:
        """The parent's children (``parent`` normalised); raises :class:`JobRequestError` when its
        source cannot make them."""
        raise NotImplementedError

    async def plan_graph(self, parent: JobRequested, info: MediaInfo) -> P:
        """:meth:`make_plan`, with what else the kind reads to plan (a package's subtitle sidecars)."""
        return self.make_plan(parent, info)

    def as_planned(self, job: JobRequested, plan: P) -> JobRequested:
        """The child as the plan describes it; raises :class:`JobRequestError` for one that is not."""
        raise NotImplementedError

    def may_fan_out(self, parent: JobRequested) -> bool:
        """Whether ``parent`` (as delivered) may run as a graph, before its source is read."""
        return True

    def runs_as_graph(self, parent: JobRequested, info: MediaInfo) -> bool:
        """Whether ``parent`` (normalised) runs as a graph on this source; else it runs as one job."""
        return True

    def claims(self, parent: JobRequested) -> list[str]:
        """Keys the parent writes besides its children's outputs, claimed before any child is out."""
        return []

    async def complete(self, plan: P, done: dict[str, JobCompleted]) -> JobCompleted:
        """Every child has completed: write what the parent is made of them, and say so. Runs under the
        graph's lock, again on a redelivery until the completion is recorded: it must be idempotent.
        Raises :class:`JobRequestError` when the children cannot make it (fails the parent)."""
        raise NotImplementedError

    async def grow(self, plan: P, done: dict[str, JobCompleted], retry: int) -> None:
        """Some children have completed (``done``): publish what can be of the parent already."""

    async def ending(self, plan: P, completion: JobCompleted, retry: int) -> None:
        """The parent is complete (``completion``), not recorded yet: announce what must come before its
        end (under the graph's lock, again on a redelivery: it must be idempotent)."""

    async def completed(self, plan: P, completion: JobCompleted) -> None:
        """After the parent's completion is recorded (and again on a redelivery): tidy up."""

    async def discard(self, plan: P) -> list[str]:
        """Remove what a failed or cancelled graph wrote; returns the keys deleted. Idempotent."""
        raise NotImplementedError

    def release_lead(self, plan: P) -> int:
        """The first children of ``plan.jobs`` that must all be out before the parent is of any use (a
        progressive package plays once they are): released together, whatever the window."""
        return 0

    def child_name(self, child: JobRequested) -> str:
        """How the parent's failure names the child that caused it."""
        return child.rendition or child.kind

    # --- the graph's life ----------------------------------------------------------------------------

    async def owners(self) -> OutputOwners:
        if self._owners is None:
            self._owners = OutputOwners(await self.js.key_value(s.OUTPUT_OWNERS_KV))
        return self._owners

    async def fan_out(self, parent: JobRequested, info: MediaInfo, attempt: int) -> P:
        """Plan ``parent`` (normalised) on its source's probe and publish its children; the parent is
        running from then on. Raises :class:`JobRequestError` when the source cannot make the graph, or
        when another job owns one of the keys the parent claims."""
        bucket = parent.output_bucket or self.bucket_out
        owners = await self.owners()
        for key in self.claims(parent):  # a parent published straight onto NATS skipped the API's
            owner = await owners.claim(bucket, key, parent.job_id)
            if owner is not None:
                raise JobRequestError(
                    f"{key!r} belongs to job {owner}: a {self.noun} needs a folder of its own"
                )
        plan = await self.store.create(await self.plan_graph(parent, info))
        await self.publish_children(plan, parent.retry)
        await publish_event(
            self.js,
            s.JOB_PROGRESS,
            JobProgress(
                job_id=parent.job_id, progress=0.0, worker=self.instance, attempt=attempt, retry=parent.retry
            ),
        )
        log.info("%s planned: %d child jobs", self.noun, len(plan.jobs), extra={"job_id": parent.job_id})
        return plan

    async def publish_children(self, plan: P, retry: int) -> None:
        """Release the plan's first children onto the transcoders' queue, in the plan's order, in the
        parent's class (the others follow as children complete). A retried parent (request generation
        ``retry``; the plan is its first generation's) has its children that did not complete run again."""
        if retry:
            for child in plan.jobs:
                if not isinstance(await self.job_state.get(child.job_id), JobCompleted):
                    await self.job_state.retried(child.job_id, retry)
        await self.releaser.release(plan, retry, self.release_lead(plan))

    async def verdict(self, job: JobRequested) -> ChildVerdict:
        """A delivered child, checked against its parent's plan (raises :class:`JobRequestError` for one
        that is not a planned child) and its parent's state."""
        assert job.parent_id is not None
        plan = await self.store.get(job.parent_id)
        if plan is None:
            raise JobRequestError(
                f"{self.noun} {job.parent_id} has no plan: a {self.noun}'s children are published by the "
                f"transcoder that takes the {self.noun}"
            )
        child = msgspec.structs.replace(self.as_planned(job, plan), retry=job.retry)
        state = await self.job_state.get(job.parent_id)
        if state is None or isinstance(state, JobCompleted):
            return ChildVerdict(child)
        return ChildVerdict(child, ended=state)

    async def child_completed(self, child: JobRequested) -> JobCompleted | None:
        """After a child's completion is recorded: publish what its parent has now, under the graph's
        lock (:meth:`complete` once every child has, else :meth:`grow`). Returns the parent's
        completion once it has one, else None."""
        assert child.parent_id is not None
        plan = await self.store.get(child.parent_id)
        if plan is None:
            return None
        parent_id = plan.parent.job_id
        parent_state = await self.job_state.get(parent_id)
        if isinstance(parent_state, JobCompleted):
            await self.completed(plan, parent_state)
            return parent_state
        if parent_state is not None:  # failed or cancelled: nothing published, and nothing left behind
            await self.discard(plan)
            return None
        retry = child.retry
        # The next children first, before this delivery is acked and its slot pulls again; a
        # redelivery (the transcoder died before this) releases them then.
        await self.releaser.release(plan, retry, self.release_lead(plan))
        unfit: list[JobRequestError] = []

        async def write() -> None:
            try:
                await self._publish(plan, retry)
            except JobRequestError as exc:  # children that cannot be joined: never better on a retry
                unfit.append(exc)

        await self.lock.run(parent_id, write)
        if unfit:
            await self.child_failed(child, str(unfit[0]), "ffmpeg", 1)
            return None
        state = await self.job_state.get(parent_id)
        if not isinstance(state, JobCompleted):
            return None
        await self.completed(plan, state)
        return state

    async def _publish(self, plan: P, retry: int) -> None:
        """What the parent's children have completed, published (under the graph's lock)."""
        parent = plan.parent
        if await self.job_state.get(parent.job_id) is not None:  # ended meanwhile
            return
        jobs = plan.jobs
        known = self._completions(parent.job_id)
        unknown = [c for c in jobs if c.job_id not in known]
        states = await asyncio.gather(*(self.job_state.get(c.job_id) for c in unknown))
        known.update(
            (c.job_id, st) for c, st in zip(unknown, states, strict=True) if isinstance(st, JobCompleted)
        )
        done = {c.job_id: known[c.job_id] for c in jobs if c.job_id in known}
        if len(done) < len(jobs):
            await self.grow(plan, done, retry)
            return
        completed = msgspec.structs.replace(await self.complete(plan, done), retry=retry)
        await self.ending(plan, completed, retry)
        await self.job_state.completed(completed)
        await publish_event(
            self.js, s.JOB_COMPLETED, completed, msg_id=outcome_id("completed", completed.job_id, retry)
        )
        log.info("%s completed", self.noun, extra={"job_id": completed.job_id})

    def _completions(self, parent_id: str) -> dict[str, JobCompleted]:
        """The completions of ``parent_id``'s children this transcoder has read. A completion is final (a
        retried parent runs again only the children that did not complete), so each child's state is
        read until it has one, not on every completion of the title: a title of n children costs n
        reads a completion instead of n * n over its life."""
        known = self._completed.pop(parent_id, None) or {}
        self._completed[parent_id] = known  # the most recent last
        while len(self._completed) > _COMPLETIONS_KEPT:
            del self._completed[next(iter(self._completed))]
        return known

    async def child_failed(
        self, child: JobRequested, error: str, reason: FailureReason, attempt: int
    ) -> None:
        """A child ended without output: its parent fails with the child's reason (or is cancelled with
        it), and its other children stop."""
        assert child.parent_id is not None
        parent_id = child.parent_id
        if await self.job_state.get(parent_id) is not None:
            # The parent has ended already (this child was stopped because of it): what this child
            # wrote until it stopped goes too.
            plan = await self.store.get(parent_id)
            if plan is not None:
                await self.discard(plan)
            return
        status = failed_status(reason)  # the parent ends as its child did
        if status == "cancelled":
            await self.job_state.cancelled(parent_id)
        else:
            await self.job_state.failed(parent_id)
        how = "was cancelled" if status == "cancelled" else "failed"
        await publish_event(
            self.js,
            s.JOB_FAILED,
            JobFailed(
                job_id=parent_id,
                error=f"{self.child_name(child)} ({child.job_id}) {how}: {error}",
                reason=reason,
                worker=self.instance,
                attempt=attempt,
                retry=child.retry,
            ),
            msg_id=outcome_id("failed", parent_id, child.retry),
        )
        # Children running elsewhere stop; queued ones see the parent's state before they start.
        await publish_event(
            self.js,
            s.JOB_CANCEL,
            JobCancel(job_id=parent_id, retry=child.retry),
            msg_id=outcome_id("cancel", parent_id, child.retry),
        )
        plan = await self.store.get(parent_id)
        if plan is not None:
            await self.discard(plan)

    # --- storage the kinds' graphs share --------------------------------------------------------------

    def _put(self, bucket: str, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=guess_content_type(key))

    def _delete(self, bucket: str, keys: list[str]) -> None:
        answer = self.s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise RuntimeError(
                f"S3 did not delete {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )
