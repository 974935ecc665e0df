"""Catalog domain logic over the database: registration, job state, queries.

Every write is idempotent: the same event applied twice leaves the same rows.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from mpr_common.codec import decode, encode
from mpr_common.events import (
    AssetView,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    JobView,
    MediaInfo,
    ObjectFound,
    ObjectRemoved,
)
from mpr_common.jobs import TERMINAL, next_status
from mpr_common.keys import media_type

from .models import Asset, Job

_NS = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def asset_id(bucket: str, key: str, etag: str) -> str:
    """Same bucket + key + etag = same asset, on every replica."""
    return uuid.uuid5(_NS, f"{bucket}\x00{key}\x00{etag}").hex


class Catalog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        # SQLite allows one writer: serialise writes in-process instead of hitting "database is locked".
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    async def _write(self, fn):
        if self._write_lock is None:
            return await fn()
        async with self._write_lock:
            return await fn()

    # --- assets --------------------------------------------------------------------------
    @staticmethod
    def _new_asset(obj: ObjectFound, now: float) -> Asset:
        return Asset(
            id=asset_id(obj.bucket, obj.key, obj.etag),
            bucket=obj.bucket,
            key=obj.key,
            etag=obj.etag,
            size=obj.size,
            media_type=media_type(obj.key),
            last_modified=obj.last_modified,
            first_scan_id=obj.scan_id,
            created_at=now,
            updated_at=now,
        )

    @staticmethod
    async def _supersede(session: AsyncSession, new: list[Asset], now: float) -> None:
        """A new etag for the same key is a new version: older versions leave the listing."""
        by_bucket: dict[str, list[Asset]] = {}
        for a in new:
            by_bucket.setdefault(a.bucket, []).append(a)
        for bucket, assets in by_bucket.items():
            await session.execute(
                update(Asset)
                .where(
                    Asset.bucket == bucket,
                    Asset.key.in_([a.key for a in assets]),
                    Asset.id.not_in([a.id for a in assets]),
                )
                .values(removed=True, updated_at=now)
            )

    async def _register_chunk(
        self, objects: list[ObjectFound]
    ) -> tuple[list[Asset], dict[str, Asset]] | None:
        """Insert the objects not yet known, in one transaction; returns (created, already known),
        or None when another writer inserted one of them meanwhile."""

        async def run():
            ids = {asset_id(o.bucket, o.key, o.etag): o for o in objects}
            async with self.sessions() as session:
                rows = await session.execute(select(Asset).where(Asset.id.in_(list(ids))))
                known = {a.id: a for a in rows.scalars()}
                now = time.time()
                for a in known.values():
                    if a.removed:  # uploaded again after a delete
                        a.removed = False
                        a.updated_at = now
                created = [self._new_asset(o, now) for aid, o in ids.items() if aid not in known]
                try:
                    session.add_all(created)
                    await session.flush()
                    await self._supersede(session, created, now)
                    await session.commit()
                except IntegrityError:  # registered concurrently (the other path, or another replica)
                    await session.rollback()
                    return None
                return created, known

        return await self._write(run)

    async def register(self, obj: ObjectFound) -> tuple[Asset, bool]:
        """Register an object; returns (asset, created_now). Idempotent on bucket+key+etag."""
        while True:
            result = await self._register_chunk([obj])
            if result is not None:
                created, known = result
                return (created[0], True) if created else (next(iter(known.values())), False)

    async def register_batch(
        self, objects: list[ObjectFound], scan_id: str | None, chunk: int = 500
    ) -> tuple[list[Asset], list[str], list[str]]:
        """Returns (new assets, registered keys, skipped keys), a few transactions per thousand objects.

        An object counts as registered by this scan if this scan created it, whichever path
        (this request or the JetStream consumer) got to it first.
        """
        created_assets: list[Asset] = []
        registered: list[str] = []
        skipped: list[str] = []
        for i in range(0, len(objects), chunk):
            part = objects[i : i + chunk]
            result = await self._register_chunk(part)
            if result is None:  # lost a race: settle this chunk object by object
                pairs = [await self.register(o) for o in part]
                created = [a for a, c in pairs if c]
                known = {a.id: a for a, c in pairs if not c}
            else:
                created, known = result
            created_ids = {a.id for a in created}
            created_assets += created
            for o in part:
                aid = asset_id(o.bucket, o.key, o.etag)
                mine = aid in created_ids or (scan_id is not None and known[aid].first_scan_id == scan_id)
                (registered if mine else skipped).append(o.key)
        return created_assets, registered, skipped

    async def remove(self, ev: ObjectRemoved) -> int:
        async def run() -> int:
            async with self.sessions() as session:
                res = await session.execute(
                    update(Asset)
                    .where(Asset.bucket == ev.bucket, Asset.key == ev.key, Asset.removed.is_(False))
                    .values(removed=True, updated_at=time.time())
                )
                await session.commit()
                return res.rowcount or 0

        return await self._write(run)

    async def set_probe_result(self, aid: str, info: MediaInfo | None, error: str | None) -> Asset | None:
        async def run() -> Asset | None:
            async with self.sessions() as session:
                asset = await session.get(Asset, aid)
                if asset is None:
                    return None
                asset.probe_status = "ok" if info is not None else "error"
                asset.info_json = encode(info).decode() if info is not None else None
                asset.duration = info.duration if info is not None else None
                asset.probe_error = error
                asset.updated_at = time.time()
                session.add(asset)
                await session.commit()
                return asset

        return await self._write(run)

    async def pending_probes(self) -> list[Asset]:
        async with self.sessions() as session:
            rows = await session.execute(select(Asset).where(Asset.probe_status == "pending"))
            return list(rows.scalars())

    async def get_asset(self, aid: str) -> Asset | None:
        async with self.sessions() as session:
            return await session.get(Asset, aid)

    async def list_assets(
        self, limit: int, offset: int, prefix: str | None = None, include_removed: bool = False
    ) -> tuple[list[Asset], int]:
        async with self.sessions() as session:
            q = select(Asset)
            if not include_removed:
                q = q.where(Asset.removed.is_(False))
            if prefix:
                q = q.where(Asset.key.startswith(prefix, autoescape=True))
            total = (await session.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
            rows = await session.execute(q.order_by(Asset.key, Asset.created_at).offset(offset).limit(limit))
            return list(rows.scalars()), total

    # --- jobs ----------------------------------------------------------------------------
    async def _update_job(self, job_id: str, mutate) -> Job:
        async def run() -> Job:
            async with self.sessions() as session:
                job = await session.get(Job, job_id, with_for_update=True)  # row lock: no lost updates
                if job is None:
                    job = Job(id=job_id)
                    mutate(job, True)
                    session.add(job)
                    try:
                        await session.commit()
                        return job
                    except IntegrityError:
                        await session.rollback()
                        job = await session.get(
                            Job, job_id, with_for_update=True
                        )  # row lock: no lost updates
                before = job.model_dump()
                mutate(job, False)
                if job.model_dump() == before:  # a repeated or stale event: nothing to write
                    return job  # closing the session ends the transaction (and the row lock)
                job.updated_at = time.time()
                session.add(job)
                await session.commit()
                return job

        return await self._write(run)

    async def record_requested(self, ev: JobRequested) -> Job:
        def mutate(job: Job, new: bool) -> None:
            # Fill request fields; status is left to the state machine (a progress or completion
            # event may have been recorded before the request).
            job.kind = ev.kind
            job.source_bucket = ev.source_bucket
            job.source_key = ev.source_key
            job.output_bucket = job.output_bucket or ev.output_bucket
            job.output_key = job.output_key or ev.output_key
            job.preset = ev.preset
            job.start = ev.start
            job.end = ev.end
            job.requested_by = ev.requested_by
            if new:
                job.status = "queued"
                job.created_at = ev.requested_at
            else:
                job.created_at = min(job.created_at, ev.requested_at)

        return await self._update_job(ev.job_id, mutate)

    async def record_progress(self, ev: JobProgress) -> Job:
        def mutate(job: Job, new: bool) -> None:
            if job.status in TERMINAL:
                return
            job.status = next_status(None if new else job.status, "running")
            job.progress = max(job.progress, min(100.0, max(0.0, ev.progress)))
            job.speed = ev.speed if ev.speed is not None else job.speed
            job.worker = ev.worker or job.worker
            job.attempts = max(job.attempts, ev.attempt)
            job.started_at = job.started_at or ev.at

        return await self._update_job(ev.job_id, mutate)

    async def record_completed(self, ev: JobCompleted) -> Job:
        def mutate(job: Job, new: bool) -> None:
            status = next_status(None if new else job.status, "completed")
            if status != "completed":
                return
            job.status = "completed"
            job.progress = 100.0
            job.output_bucket = ev.output_bucket
            job.output_key = ev.output_key
            job.output_keys_json = encode(ev.output_keys or [ev.output_key]).decode()
            job.output_size = ev.output_size
            job.worker = ev.worker or job.worker
            job.attempts = max(job.attempts, ev.attempt)
            job.error = None
            job.failure_reason = None
            job.finished_at = ev.at
            job.started_at = job.started_at or (ev.at - (ev.elapsed or 0))

        return await self._update_job(ev.job_id, mutate)

    async def record_failed(self, ev: JobFailed) -> Job:
        target = "cancelled" if ev.reason == "cancelled" else "failed"

        def mutate(job: Job, new: bool) -> None:
            if next_status(None if new else job.status, target) != target:
                return
            job.status = target
            job.error = ev.error
            job.failure_reason = ev.reason
            job.worker = ev.worker or job.worker
            job.attempts = max(job.attempts, ev.attempt)
            job.finished_at = ev.at

        return await self._update_job(ev.job_id, mutate)

    async def record_cancel(self, ev: JobCancel) -> Job:
        def mutate(job: Job, new: bool) -> None:
            if next_status(None if new else job.status, "cancelled") != "cancelled":
                return
            job.status = "cancelled"
            job.error = job.error or "cancelled by request"
            job.failure_reason = "cancelled"
            job.finished_at = ev.at

        return await self._update_job(ev.job_id, mutate)

    async def count_jobs_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(("queued", "running", "completed", "failed", "cancelled"), 0)
        async with self.sessions() as session:
            rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
            counts.update({status: n for status, n in rows.all()})
        return counts

    async def get_job(self, job_id: str) -> Job | None:
        async with self.sessions() as session:
            return await session.get(Job, job_id)

    async def list_jobs(self, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        async with self.sessions() as session:
            q = select(Job)
            if status:
                q = q.where(Job.status == status)
            total = (await session.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
            rows = await session.execute(q.order_by(Job.created_at.desc()).offset(offset).limit(limit))
            return list(rows.scalars()), total


def asset_view(a: Asset) -> AssetView:
    return AssetView(
        id=a.id,
        bucket=a.bucket,
        key=a.key,
        etag=a.etag,
        size=a.size,
        media_type=a.media_type,
        probe_status=a.probe_status,
        probe_error=a.probe_error,
        info=decode(a.info_json, MediaInfo) if a.info_json else None,
        removed=a.removed,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


def job_view(j: Job) -> JobView:
    return JobView(
        id=j.id,
        kind=j.kind,
        status=j.status,
        progress=round(j.progress, 1),
        source_key=j.source_key,
        source_bucket=j.source_bucket,
        output_key=j.output_key,
        output_bucket=j.output_bucket,
        output_keys=decode(j.output_keys_json, list[str]) if j.output_keys_json else [],
        output_size=j.output_size,
        preset=j.preset,
        start=j.start,
        end=j.end,
        error=j.error,
        failure_reason=j.failure_reason,
        speed=j.speed,
        attempts=j.attempts,
        worker=j.worker,
        created_at=j.created_at,
        updated_at=j.updated_at,
        started_at=j.started_at,
        finished_at=j.finished_at,
    )
