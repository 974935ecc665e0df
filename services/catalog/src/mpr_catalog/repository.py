"""Catalog reads (assets, jobs, scans) and probe results. Writes from the streams live in
:mod:`mpr_catalog.ingest`; both go through :class:`~mpr_catalog.db.Database`."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from mpr_common.codec import decode, encode
from mpr_common.events import (
    JOB_STATUSES,
    AssetView,
    JobAttempt,
    JobRequested,
    JobView,
    KeepVerdict,
    LadderChoice,
    Loudness,
    MediaInfo,
    Quality,
    RefusedObject,
    ScanView,
)
from mpr_common.job_status import is_terminal
from mpr_common.jobs import GRAPH_KINDS

from .db import Database
from .ingest import ASSETS, ATTEMPTS, JOBS, SCANS, NewAsset


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- assets ------------------------------------------------------------------------------
    async def set_probe_result(self, aid: str, info: MediaInfo | None, error: str | None) -> Row | None:
        async def run(conn) -> Row | None:
            res = await conn.execute(
                update(ASSETS)
                .where(ASSETS.c.id == aid)
                .values(
                    probe_status="ok" if info is not None else "error",
                    info_json=encode(info).decode() if info is not None else None,
                    duration=info.duration if info is not None else None,
                    probe_error=error,
                    updated_at=time.time(),
                )
            )
            if not res.rowcount:
                return None
            return (await conn.execute(select(ASSETS).where(ASSETS.c.id == aid))).first()

        return await self.db.transaction(run)

    async def pending_probes(self, limit: int = 1000, skip: frozenset[str] = frozenset()) -> list[NewAsset]:
        """The oldest assets still waiting for a probe (the prober's queue, paged)."""
        q = (
            select(ASSETS.c.id, ASSETS.c.bucket, ASSETS.c.key, ASSETS.c.etag, ASSETS.c.size)
            .where(ASSETS.c.probe_status == "pending")
            .order_by(ASSETS.c.created_at)
            .limit(limit + len(skip))
        )
        async with self.db.engine.connect() as conn:
            rows = [NewAsset(*r) for r in await conn.execute(q)]
        return [a for a in rows if a.id not in skip][:limit]

    async def get_asset(self, aid: str) -> AssetView | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(ASSETS).where(ASSETS.c.id == aid))).first()
        return asset_view(row) if row else None

    async def list_assets(
        self,
        limit: int,
        offset: int,
        prefix: str | None = None,
        include_removed: bool = False,
        name: str | None = None,
    ) -> tuple[list[AssetView], int]:
        q = select(ASSETS)
        if not include_removed:
            q = q.where(ASSETS.c.removed.is_(False))
        if prefix:
            q = q.where(ASSETS.c.key.startswith(prefix, autoescape=True))
        if name:  # a part of the key, any case (SQLite's LIKE ignores ASCII case, PostgreSQL's does not)
            q = q.where(func.lower(ASSETS.c.key).contains(name.lower(), autoescape=True))
        async with self.db.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
            rows = await conn.execute(
                q.order_by(ASSETS.c.key, ASSETS.c.created_at).offset(offset).limit(limit)
            )
            return [asset_view(r) for r in rows], total

    # --- jobs --------------------------------------------------------------------------------
    async def get_job(self, job_id: str) -> JobView | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(JOBS).where(JOBS.c.id == job_id))).first()
            return (await _with_children(conn, [job_view(row)]))[0] if row else None

    async def list_jobs(
        self, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[JobView], int]:
        q = select(JOBS)
        if status:
            q = q.where(JOBS.c.status == status)
        async with self.db.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
            rows = await conn.execute(q.order_by(JOBS.c.created_at.desc()).offset(offset).limit(limit))
            return await _with_children(conn, [job_view(r) for r in rows]), total

    async def job_log(self, job_id: str) -> tuple[JobView, list[JobAttempt]] | None:
        """A job and every attempt at it, oldest first (generation, then attempt)."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(JOBS).where(JOBS.c.id == job_id))).first()
            if row is None:
                return None
            q = (
                select(ATTEMPTS)
                .where(ATTEMPTS.c.job_id == job_id)
                .order_by(ATTEMPTS.c.retry, ATTEMPTS.c.attempt)
            )
            attempts = [msgspec.convert(dict(a._mapping), JobAttempt) for a in await conn.execute(q)]
            return (await _with_children(conn, [job_view(row)]))[0], attempts

    async def job_requests(
        self,
        limit: int,
        job_id: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        reason: str | None = None,
        since: float | None = None,
        prefix: str | None = None,
    ) -> list[tuple[JobView, JobRequested]]:
        """Jobs with the request each was recorded with (what a retry publishes again): the one named
        ``job_id``, or those matching the filter, oldest first. A filter never matches a package's
        children (a child is retried with its package); ``since`` is when the job ended."""
        q = select(JOBS)
        if job_id is not None:
            q = q.where(JOBS.c.id == job_id)
        else:
            q = q.where(JOBS.c.parent_id.is_(None))
        if status:
            q = q.where(JOBS.c.status == status)
        if kind:
            q = q.where(JOBS.c.kind == kind)
        if reason:
            q = q.where(JOBS.c.failure_reason == reason)
        if since is not None:
            q = q.where(JOBS.c.finished_at >= since)
        if prefix:
            q = q.where(JOBS.c.source_key.startswith(prefix, autoescape=True))
        async with self.db.engine.connect() as conn:
            rows = list(await conn.execute(q.order_by(JOBS.c.created_at, JOBS.c.id).limit(limit)))
            views = await _with_children(conn, [job_view(r) for r in rows])
        return [(v, recorded_request(r)) for v, r in zip(views, rows, strict=True)]

    async def count_jobs_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(JOB_STATUSES, 0)
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(select(JOBS.c.status, func.count()).group_by(JOBS.c.status))
            counts.update({status: n for status, n in rows.all()})
        return counts

    # --- scans -------------------------------------------------------------------------------
    async def get_scan(self, scan_id: str) -> ScanView | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(SCANS).where(SCANS.c.id == scan_id))).first()
        return scan_view(row) if row else None


def asset_view(a: Any) -> AssetView:
    row = a._mapping
    return msgspec.convert(
        {**row, "info": decode(a.info_json, MediaInfo) if a.info_json else None}, AssetView
    )


def job_view(j: Any) -> JobView:
    row = j._mapping
    output_keys = decode(j.output_keys_json, list[str]) if j.output_keys_json else []
    loudness = decode(j.loudness_json, Loudness) if j.loudness_json else None
    quality = decode(j.quality_json, Quality) if j.quality_json else None
    by_rendition = decode(j.rendition_quality_json, dict[str, Quality]) if j.rendition_quality_json else {}
    keep = decode(j.keep_json, KeepVerdict) if j.keep_json else None
    chosen = decode(j.chosen_ladder_json, LadderChoice) if j.chosen_ladder_json else None
    return msgspec.convert(
        {
            **row,
            "progress": round(j.progress, 1),
            "output_keys": output_keys,
            "loudness": loudness,
            "quality": quality,
            "rendition_quality": by_rendition,
            "keep": keep,
            "chosen_ladder": chosen,
        },
        JobView,
    )


async def _with_children(conn: AsyncConnection, views: list[JobView]) -> list[JobView]:
    """Job graphs' parents (packages, chunked transcodes) get their children's ids and, while they run,
    the children's progress weighted by each one's share of the work (read when asked: no write per
    child progress). A graph's shares add up to 1, and its children reach the queue a window at a time:
    a child not seen yet has not started (counted as 0 by dividing by at least 1). Weights that add up
    to more are relative shares."""
    packages = {v.id: v for v in views if v.kind in GRAPH_KINDS}
    if not packages:
        return views
    q = select(JOBS.c.id, JOBS.c.parent_id, JOBS.c.progress, JOBS.c.weight).where(
        JOBS.c.parent_id.in_(list(packages))
    )
    children: dict[str, list[Any]] = {}
    for r in await conn.execute(q.order_by(JOBS.c.id)):
        children.setdefault(r.parent_id, []).append(r)
    for pid, rows in children.items():
        v = packages[pid]
        v.children = [r.id for r in rows]
        total = max(1.0, sum(r.weight for r in rows))
        if not is_terminal(v.status):
            v.progress = round(sum(r.weight * r.progress for r in rows) / total, 1)
    return views


_REQUEST_COLUMNS = (
    *("kind", "source_key", "output_key", "preset", "start", "end", "source_bucket", "output_bucket"),
    *("loudnorm", "parent_id", "rendition", "weight", "priority", "template", "rule"),
)


def recorded_request(j: Any) -> JobRequested:
    """The request a job row was recorded from; a row without a recorded request gets one made
    of its columns."""
    if j.request_json:
        return decode(j.request_json, JobRequested)
    row = j._mapping
    return msgspec.convert(
        {
            **{f: row[f] for f in _REQUEST_COLUMNS},
            "job_id": j.id,
            "requested_by": j.requested_by or "api",
            "requested_at": j.created_at,
            "retry": j.retries,
        },
        JobRequested,
    )


def scan_view(s: Any) -> ScanView:
    refused = decode(s.refused_json, list[RefusedObject]) if s.refused_json else []
    return msgspec.convert(
        {**s._mapping, "skipped": max(0, s.found - s.registered), "refused": refused}, ScanView
    )
