"""A package job's life on the transcoders: fan-out into child jobs, the checks a child passes before it
runs, and the end: the last child to complete writes the manifests (HLS master playlist, DASH MPD) and
completes the package; a child that fails for good fails the package with its reason and stops the others.

Every step is idempotent, so a redelivery after a crash repeats it harmlessly: children are published
with their ids as ``Nats-Msg-Id``, the plan is created once (``mpr-packages`` KV), a finished child is
never run again (job-state KV), and manifests are rewritten with the same bytes."""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from dataclasses import dataclass
from typing import Any

import msgspec

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
from mpr_common.jobs import JobRequestError, outcome_id
from mpr_common.jobstate import JobState
from mpr_common.packages import PackagePlan, PackageStore, as_planned, plan_package
from mpr_common.presets import DASH_MANIFEST, MASTER_PLAYLIST
from mpr_common.storage import guess_content_type

from .manifests import dash_mpd, hls_master

log = logging.getLogger("mpr.transcoder")


@dataclass(frozen=True, slots=True)
class ChildVerdict:
    """What a delivered child job may do: run ``job`` (as planned), or end as cancelled because its
    package ended (``ended`` names how)."""

    job: JobRequested
    ended: str | None = None


class Packager:
    def __init__(
        self, js: Any, s3: Any, job_state: JobState, store: PackageStore, bucket_out: str, instance: str
    ) -> None:
        self.js = js
        self.s3 = s3
        self.job_state = job_state
        self.store = store
        self.bucket_out = bucket_out
        self.instance = instance

    async def fan_out(self, package: JobRequested, info: MediaInfo, attempt: int) -> PackagePlan:
        """Plan ``package`` (normalised) on its source's probe and publish its children; the package is
        running from then on. Raises :class:`JobRequestError` when the source cannot make a package."""
        plan = await self.store.create(plan_package(package, info))
        for child in plan.children:  # queued in the package's class
            if package.retry:  # a retried package: its children that did not complete run again
                if not isinstance(await self.job_state.get(child.job_id), JobCompleted):
                    await self.job_state.retried(child.job_id, package.retry)
                child = msgspec.structs.replace(child, retry=package.retry)
            msg_id = plan.msg_id(child) + (f".r{package.retry}" if package.retry else "")
            await publish_event(self.js, s.child_subject(package.priority), child, msg_id=msg_id)
        await publish_event(
            self.js,
            s.JOB_PROGRESS,
            JobProgress(
                job_id=package.job_id,
                progress=0.0,
                worker=self.instance,
                attempt=attempt,
                retry=package.retry,
            ),
        )
        log.info("package planned: %d child jobs", len(plan.children), extra={"job_id": package.job_id})
        return plan

    async def verdict(self, job: JobRequested) -> ChildVerdict:
        """A delivered child, checked against its package's plan (raises :class:`JobRequestError` for one
        that is not a planned child) and its package's state."""
        assert job.parent_id is not None
        plan = await self.store.get(job.parent_id)
        if plan is None:
            raise JobRequestError(
                f"package {job.parent_id} has no plan: a package's children are published by the transcoder "
                "that takes the package"
            )
        child = msgspec.structs.replace(as_planned(job, plan), retry=job.retry)
        state = await self.job_state.get(job.parent_id)
        if state is None or isinstance(state, JobCompleted):
            return ChildVerdict(child)
        return ChildVerdict(child, ended=state)

    async def child_completed(self, child: JobRequested) -> JobCompleted | None:
        """After a child's completion is recorded: if every child of its package has completed, write
        the manifests and complete the package. Returns the package's completion, else None."""
        assert child.parent_id is not None
        plan = await self.store.get(child.parent_id)
        if plan is None:
            return None
        package_state = await self.job_state.get(plan.package.job_id)
        if isinstance(package_state, JobCompleted):
            return package_state
        if package_state is not None:  # failed or cancelled: no manifests for a broken package
            return None
        states = await asyncio.gather(*(self.job_state.get(c.job_id) for c in plan.children))
        done = [st for st in states if isinstance(st, JobCompleted)]
        if len(done) < len(plan.children):
            return None
        completed = msgspec.structs.replace(await self._complete(plan, done), retry=child.retry)
        await self.job_state.completed(completed)
        await publish_event(
            self.js, s.JOB_COMPLETED, completed, msg_id=outcome_id("completed", completed.job_id, child.retry)
        )
        log.info("package completed", extra={"job_id": completed.job_id})
        return completed

    async def child_failed(
        self, child: JobRequested, error: str, reason: FailureReason, attempt: int
    ) -> None:
        """A child ended without output: its package fails with the child's reason (or is cancelled with
        it), and its other children stop."""
        assert child.parent_id is not None
        package_id = child.parent_id
        if await self.job_state.get(package_id) is not None:
            return  # the package has ended already (this child was stopped because of it)
        name = child.rendition or child.kind
        if reason == "cancelled":
            await self.job_state.cancelled(package_id)
        else:
            await self.job_state.failed(package_id)
        await publish_event(
            self.js,
            s.JOB_FAILED,
            JobFailed(
                job_id=package_id,
                error=f"{name} ({child.job_id}) {'was cancelled' if reason == 'cancelled' else 'failed'}: {error}",
                reason=reason,
                worker=self.instance,
                attempt=attempt,
                retry=child.retry,
            ),
            msg_id=outcome_id("failed", package_id, child.retry),
        )
        # Children running elsewhere stop; queued ones see the package's state before they start.
        await publish_event(
            self.js,
            s.JOB_CANCEL,
            JobCancel(job_id=package_id, retry=child.retry),
            msg_id=outcome_id("cancel", package_id, child.retry),
        )

    async def _complete(self, plan: PackagePlan, children: list[JobCompleted]) -> JobCompleted:
        package = plan.package
        bucket = package.output_bucket or self.bucket_out
        renditions = [c.rendition for c in children if c.rendition is not None]
        folder = plan.folder
        mpd_key = posixpath.join(folder, DASH_MANIFEST)
        master_key = posixpath.join(folder, MASTER_PLAYLIST)
        manifests = [(mpd_key, dash_mpd(renditions)), (master_key, hls_master(renditions))]
        for key, text in manifests:  # after every child's media: the package appears whole
            await asyncio.to_thread(self._put, bucket, key, text.encode())
        keys = [k for c in children for k in (c.output_keys or [c.output_key])]
        durations = [sum(r.segments) for r in renditions if r.segments]
        loudness = next((c.loudness for c in children if c.loudness is not None), None)
        return JobCompleted(
            job_id=package.job_id,
            output_key=master_key,
            output_bucket=bucket,
            output_keys=[*keys, mpd_key, master_key],
            output_size=sum(c.output_size for c in children) + sum(len(t.encode()) for _, t in manifests),
            duration=max(durations) if durations else None,
            elapsed=round(max(0.0, time.time() - package.requested_at), 3),
            worker=self.instance,
            loudness=loudness,
        )

    def _put(self, bucket: str, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=guess_content_type(key))
