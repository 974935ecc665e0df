"""The catalog's answers to requests (mpr_common.catalog_requests): one function per request, typed
request in, typed reply out; errors are raised (mpr_common.errors) and answered as codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from mpr_common.catalog_requests import (
    MAX_JOB_REQUESTS,
    AssetReply,
    AssetsPage,
    CatalogReply,
    FindJobRequests,
    GetAsset,
    GetJob,
    GetJobLog,
    GetScan,
    JobLogReply,
    JobReply,
    JobRequestsReply,
    JobsPage,
    ListAssets,
    ListJobs,
    ScanReply,
)
from mpr_common.codec import encode
from mpr_common.errors import MprError, NotFound, Unavailable

from .deps import CatalogDeps

MAX_REPLY_BYTES = 800_000  # of the jobs a FindJobRequests matches, as many as fit under NATS's 1 MB


async def list_assets(d: CatalogDeps, q: ListAssets) -> AssetsPage:
    assets, total = await d.catalog.list_assets(q.limit, q.offset, q.prefix, name=q.name)
    return AssetsPage(assets=assets, total=total)


async def get_asset(d: CatalogDeps, q: GetAsset) -> AssetReply:
    asset = await d.catalog.get_asset(q.id)
    if asset is None:
        raise NotFound(f"asset {q.id} not found")
    return AssetReply(asset=asset)


async def list_jobs(d: CatalogDeps, q: ListJobs) -> JobsPage:
    if q.after_seq:
        await d.wait_for_jobs(q.after_seq)
    jobs, total = await d.catalog.list_jobs(q.limit, q.offset, q.status)
    return JobsPage(jobs=jobs, total=total)


async def get_job(d: CatalogDeps, q: GetJob) -> JobReply:
    """A job JetStream has stored but this catalog has not ingested yet is waited for: what the API
    acknowledged is readable at once, without a second write path."""
    job = None if q.after_seq else await d.catalog.get_job(q.id)
    if job is None:  # not ingested yet, or asked for as of a write (after_seq): wait that far
        caught_up = await d.wait_for_jobs(q.after_seq or None)
        job = await d.catalog.get_job(q.id)
        if job is None:
            raise _missing_job(q.id, caught_up)
    return JobReply(job=job)


async def get_job_log(d: CatalogDeps, q: GetJobLog) -> JobLogReply:
    """A job and its attempts (the API's GET /api/jobs/{id}/log)."""
    found = None if q.after_seq else await d.catalog.job_log(q.id)
    if found is None:
        caught_up = await d.wait_for_jobs(q.after_seq or None)
        found = await d.catalog.job_log(q.id)
        if found is None:
            raise _missing_job(q.id, caught_up)
    job, attempts = found
    return JobLogReply(job=job, attempts=attempts)


def _missing_job(job_id: str, caught_up: bool) -> MprError:
    """Not found only once everything the jobs stream held has been read: a catalog still catching up
    (a busy stream, a batch being retried) cannot tell, and says so (retry) instead of "not found"."""
    if caught_up:
        return NotFound(f"job {job_id} not found")
    return Unavailable(f"job {job_id} not found yet: the catalog is catching up with the jobs stream; retry")


async def find_job_requests(d: CatalogDeps, q: FindJobRequests) -> JobRequestsReply:
    """Jobs to retry, by id or by filter, with the requests a retry publishes again."""
    found = await d.catalog.job_requests(
        limit=max(1, min(q.limit, MAX_JOB_REQUESTS)),
        job_id=q.id,
        status=q.status,
        kind=q.kind,
        reason=q.reason,
        since=q.since,
        prefix=q.prefix,
    )
    if q.id is not None and not found:
        raise NotFound(f"job {q.id} not found")
    reply = JobRequestsReply(total=len(found))  # total: matched; jobs: as many as one answer holds
    room = MAX_REPLY_BYTES
    for job, req in found:
        job = msgspec.structs.replace(job, output_keys=[], children=[])  # lists a retry does not need
        size = len(encode(job)) + len(encode(req))
        if size > room:
            break
        room -= size
        reply.jobs.append(job)
        reply.requests.append(req)
    return reply


async def get_scan(d: CatalogDeps, q: GetScan) -> ScanReply:
    if q.after_seq:  # a whole scan may still be on its way in: wait as long as the requester does
        await d.wait_for_objects(q.after_seq, d.scan_wait)
    scan = await d.catalog.get_scan(q.id)
    if scan is None:  # started a moment ago
        caught_up = await d.wait_for_objects(None)
        scan = await d.catalog.get_scan(q.id)
        if scan is None and not caught_up:
            raise Unavailable(f"scan {q.id} not found yet: the catalog is catching up; retry")
    if scan is None:
        raise NotFound(f"scan {q.id} not found")
    return ScanReply(scan=scan)


QueryHandler = Callable[[CatalogDeps, Any], Awaitable[CatalogReply]]

# Each request's answer, by the request (the subject it is answered on is the request's tag).
ANSWERS: dict[type, QueryHandler] = {
    ListAssets: list_assets,
    GetAsset: get_asset,
    ListJobs: list_jobs,
    GetJob: get_job,
    GetJobLog: get_job_log,
    FindJobRequests: find_job_requests,
    GetScan: get_scan,
}
