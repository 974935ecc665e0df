"""JetStream's max-deliveries advisories for the transcoders' consumers: a job whose worker died on
every delivery (kill -9, OOM) is failed, with a dead letter that keeps its request, and so is its
package when it was a package's child."""

from __future__ import annotations

from typing import cast

import msgspec

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, publish_event
from mpr_common.codec import decode
from mpr_common.events import DeadLetter, JobFailed, JobRequested
from mpr_common.job_status import is_terminal
from mpr_common.jobs import job_identity, outcome_id

from .batches import CHILD_SUBJECTS
from .deps import CatalogDeps


class MaxDeliveriesAdvisory(msgspec.Struct):
    """JetStream's ``io.nats.jetstream.advisory.v1.max_deliver`` (the fields we use)."""

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0


async def fail_abandoned_job(d: CatalogDeps, data: bytes) -> None:
    """Handle one advisory: fail its job (unless it has ended) and keep a dead letter."""
    adv = decode(data, MaxDeliveriesAdvisory)
    original = await d.js.get_msg(adv.stream, adv.stream_seq)
    # nats-py types a stored message's data optional (None: an empty payload, never a job request)
    req = job_identity(
        decode(cast(bytes, original.data), JobRequested), (original.headers or {}).get(MSG_ID), adv.stream_seq
    )
    job = await d.catalog.get_job(req.job_id)
    if job is not None and is_terminal(job.status):
        return
    error = (
        f"gave up after {adv.deliveries} deliveries: the transcoder handling it stopped "
        "(crashed or killed) before finishing each time"
    )
    letter = DeadLetter(
        subject=original.subject or s.JOB_REQUESTED,
        stream_seq=adv.stream_seq,
        deliveries=adv.deliveries,
        error=error,
        payload=cast(bytes, original.data).decode("utf-8", "replace"),
        job_id=req.job_id,
    )
    await publish_event(d.js, s.DLQ_JOBS, letter, msg_id=f"dlq-{s.JOB_REQUESTED}-{adv.stream_seq}")
    if d.job_state is not None:
        await d.job_state.failed(req.job_id)
    await _publish_failed(d, req.job_id, error, adv.deliveries, req.retry)
    if req.parent_id is not None and original.subject in CHILD_SUBJECTS:
        await _fail_package(d, req, error, adv.deliveries)


async def _fail_package(d: CatalogDeps, child: JobRequested, error: str, deliveries: int) -> None:
    """A package whose child can never complete fails too (children still running finish unused)."""
    assert child.parent_id is not None
    if d.job_state is None or await d.job_state.get(child.parent_id) is not None:
        return
    await d.job_state.failed(child.parent_id)
    # A child runs in its package's generation (the transcoders give it the package's retry).
    reason = f"{child.rendition or child.kind} ({child.job_id}) failed: {error}"
    await _publish_failed(d, child.parent_id, reason, deliveries, child.retry)


async def _publish_failed(d: CatalogDeps, job_id: str, error: str, attempt: int, retry: int) -> None:
    failed = JobFailed(job_id=job_id, error=error, reason="internal", attempt=attempt, retry=retry)
    await publish_event(d.js, s.JOB_FAILED, failed, msg_id=outcome_id("failed", job_id, retry))
