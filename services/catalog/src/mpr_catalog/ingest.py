"""Batch ingestion: a batch of stream messages becomes one transaction of set-based statements
(SQLAlchemy Core, no ORM objects on this path). Acks follow the commit (see the handlers)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from mpr_common.codec import encode
from mpr_common.events import JobAttempt, MediaInfo, ObjectFound, ObjectRemoved, ScanStatus
from mpr_common.keys import media_type

from .db import Database
from .job_events import JobEvent, JobRow, fold
from .models import Asset, Attempt, Job, Scan

_NS = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
ASSETS = Asset.__table__  # type: ignore[attr-defined]
JOBS = Job.__table__  # type: ignore[attr-defined]
SCANS = Scan.__table__  # type: ignore[attr-defined]
ATTEMPTS = Attempt.__table__  # type: ignore[attr-defined]
_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def asset_id(bucket: str, key: str, etag: str) -> str:
    """Same bucket + key + etag = same asset, on every replica."""
    return uuid.uuid5(_NS, f"{bucket}\x00{key}\x00{etag}").hex


@dataclass(frozen=True, slots=True)
class NewAsset:
    """What the prober needs of an asset just registered."""

    id: str
    bucket: str
    key: str
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One finished probe: the metadata, or why there is none."""

    asset: NewAsset
    info: MediaInfo | None
    error: str | None


@dataclass
class ObjectsResult:
    created: list[NewAsset] = field(default_factory=list)
    removed: int = 0
    scans_completed: list[str] = field(default_factory=list)


ObjectEvent = ObjectFound | ObjectRemoved | ScanStatus


def _chunks(items: list[Any], n: int = _IN_CHUNK):
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Ingestor:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.last_registration = 0.0  # monotonic time of the last batch that registered objects

    def registering(self, within: float = 1.0) -> bool:
        """Objects arrived in the last ``within`` seconds (a scan is being ingested)."""
        return time.monotonic() - self.last_registration < within

    # --- jobs ------------------------------------------------------------------------------
    async def jobs(self, batch: list[JobEvent | JobAttempt]) -> set[str]:
        """Fold a batch of job events into the job rows and record the attempts it reports, in one
        transaction; returns the ids of the jobs written."""
        attempts = [ev for ev in batch if isinstance(ev, JobAttempt)]
        events = [ev for ev in batch if not isinstance(ev, JobAttempt)]
        if not events and not attempts:
            return set()
        ids = list(dict.fromkeys(ev.job_id for ev in events))

        async def run(conn: AsyncConnection) -> set[str]:
            if attempts:
                await self._attempts(conn, attempts)
            rows: dict[str, JobRow] = {}
            for part in _chunks(ids):
                q = select(JOBS).where(JOBS.c.id.in_(part))
                if self.db.locks_rows:
                    q = q.with_for_update()  # concurrent catalog replicas: no lost updates
                rows.update({r.id: dict(r._mapping) for r in await conn.execute(q)})
            known = set(rows)
            changed = fold(rows, events)
            fresh = [rows[i] for i in changed if i not in known]
            stale = [rows[i] for i in changed if i in known]
            if fresh:
                await conn.execute(insert(JOBS), fresh)
            if stale:
                cols: dict[str, Any] = {c: bindparam(f"v_{c}") for c in stale[0] if c != "id"}
                await conn.execute(
                    update(JOBS).where(JOBS.c.id == bindparam("v_id")).values(cols),
                    [{f"v_{k}": v for k, v in r.items()} for r in stale],
                )
            return changed

        return await self.db.transaction(run)

    @staticmethod
    async def _attempts(conn: AsyncConnection, attempts: list[JobAttempt]) -> None:
        """Insert each attempt once: a redelivered report of one already recorded changes nothing."""
        rows = {
            (a.job_id, a.retry, a.attempt): {
                "job_id": a.job_id,
                "retry": a.retry,
                "attempt": a.attempt,
                "worker": a.worker[:128] if a.worker else None,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "outcome": a.outcome,
                "reason": a.reason,
                "error": a.error,
                "log": a.log,
            }
            for a in reversed(attempts)  # the first report of an attempt stands, as in the table
        }
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(ATTEMPTS).on_conflict_do_nothing(index_elements=["job_id", "retry", "attempt"])
        await conn.execute(stmt, list(rows.values()))

    # --- probe results -----------------------------------------------------------------------
    async def probe_results(self, results: list[ProbeResult]) -> list[tuple[Row, ProbeResult]]:
        """Record many probes in one transaction; (row, result) of each asset that still exists."""
        latest = {r.asset.id: r for r in results}  # one asset probed twice: its last result
        now = time.time()
        params = [
            {
                "b_id": aid,
                "probe_status": "ok" if r.info is not None else "error",
                "info_json": encode(r.info).decode() if r.info is not None else None,
                "duration": r.info.duration if r.info is not None else None,
                "probe_error": r.error,
                "updated_at": now,
            }
            for aid, r in latest.items()
        ]

        async def run(conn: AsyncConnection) -> list[tuple[Row, ProbeResult]]:
            stmt = (
                update(ASSETS)
                .where(ASSETS.c.id == bindparam("b_id"))
                .values(
                    probe_status=bindparam("probe_status"),
                    info_json=bindparam("info_json"),
                    duration=bindparam("duration"),
                    probe_error=bindparam("probe_error"),
                    updated_at=bindparam("updated_at"),
                )
            )
            await conn.execute(stmt, params)
            rows: list[tuple[Row, ProbeResult]] = []
            for ids in _chunks(list(latest)):
                for row in await conn.execute(select(ASSETS).where(ASSETS.c.id.in_(ids))):
                    rows.append((row, latest[row.id]))
            return rows

        return await self.db.transaction(run)

    # --- objects and scans -------------------------------------------------------------------
    async def objects(self, events: list[ObjectEvent]) -> ObjectsResult:
        """Apply found/removed objects and scan status in stream order, in one transaction."""
        if not events:
            return ObjectsResult()
        if any(isinstance(e, ObjectFound) for e in events):
            self.last_registration = time.monotonic()

        async def run(conn: AsyncConnection) -> ObjectsResult:
            result = ObjectsResult()
            now = time.time()
            found: list[ObjectFound] = []  # consecutive sightings go in one set-based write
            for ev in events:
                if isinstance(ev, ObjectFound):
                    found.append(ev)
                    continue
                result.created += await self._found(conn, found, now)
                found = []
                if isinstance(ev, ObjectRemoved):
                    result.removed += await self._removed(conn, ev, now)
                elif await self._scan_status(conn, ev, now):
                    result.scans_completed.append(ev.scan_id)
            result.created += await self._found(conn, found, now)
            return result

        return await self.db.transaction(run)

    async def _found(self, conn: AsyncConnection, objects: list[ObjectFound], now: float) -> list[NewAsset]:
        if not objects:
            return []
        by_id = {asset_id(o.bucket, o.key, o.etag): o for o in objects}
        known: dict[str, bool] = {}
        for part in _chunks(list(by_id)):
            rows = await conn.execute(select(ASSETS.c.id, ASSETS.c.removed).where(ASSETS.c.id.in_(part)))
            known.update({r.id: r.removed for r in rows})
        new_rows: list[dict[str, Any]] = [
            {
                "id": aid,
                "bucket": o.bucket,
                "key": o.key,
                "etag": o.etag,
                "size": o.size,
                "media_type": media_type(o.key),
                "last_modified": o.last_modified,
                "probe_status": "pending",
                "first_scan_id": o.scan_id,
                "last_seen_scan_id": o.scan_id,
                "removed": False,
                "created_at": now,
                "updated_at": now,
            }
            for aid, o in by_id.items()
            if aid not in known
        ]
        if new_rows:
            await self._insert(conn, new_rows, now)
        await self._seen_again(conn, by_id, known, now)
        return [NewAsset(r["id"], r["bucket"], r["key"], r["etag"], r["size"]) for r in new_rows]

    async def _insert(self, conn: AsyncConnection, new_rows: list[dict[str, Any]], now: float) -> None:
        """New assets, the versions they replace, and what each scan registered."""
        await conn.execute(insert(ASSETS), new_rows)
        await self._supersede(conn, new_rows, now)
        per_scan: dict[str, int] = defaultdict(int)
        for r in new_rows:
            if r["first_scan_id"]:
                per_scan[r["first_scan_id"]] += 1
        for scan_id, n in per_scan.items():
            await conn.execute(
                update(SCANS).where(SCANS.c.id == scan_id).values(registered=SCANS.c.registered + n)
            )

    @staticmethod
    async def _seen_again(
        conn: AsyncConnection, by_id: dict[str, ObjectFound], known: dict[str, bool], now: float
    ) -> None:
        """Known assets found again: back in the listing when they were removed, and seen by the scan."""
        again = [aid for aid, removed in known.items() if removed]  # uploaded again after a delete
        for part in _chunks(again):
            await conn.execute(
                update(ASSETS).where(ASSETS.c.id.in_(part)).values(removed=False, updated_at=now)
            )
        seen: dict[str, list[str]] = defaultdict(list)
        for aid, o in by_id.items():
            if aid in known and o.scan_id:
                seen[o.scan_id].append(aid)
        for scan_id, aids in seen.items():
            for part in _chunks(aids):
                await conn.execute(
                    update(ASSETS).where(ASSETS.c.id.in_(part)).values(last_seen_scan_id=scan_id)
                )

    @staticmethod
    async def _supersede(conn: AsyncConnection, new_rows: list[dict[str, Any]], now: float) -> None:
        """A new etag for the same key is a new version: older versions leave the listing."""
        by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in new_rows:
            by_bucket[r["bucket"]].append(r)
        for bucket, rows in by_bucket.items():
            for part in _chunks(rows):
                await conn.execute(
                    update(ASSETS)
                    .where(
                        ASSETS.c.bucket == bucket,
                        ASSETS.c.key.in_([r["key"] for r in part]),
                        ASSETS.c.id.not_in([r["id"] for r in part]),
                        ASSETS.c.removed.is_(False),
                    )
                    .values(removed=True, updated_at=now)
                )

    @staticmethod
    async def _removed(conn: AsyncConnection, ev: ObjectRemoved, now: float) -> int:
        res = await conn.execute(
            update(ASSETS)
            .where(ASSETS.c.bucket == ev.bucket, ASSETS.c.key == ev.key, ASSETS.c.removed.is_(False))
            .values(removed=True, updated_at=now)
        )
        return res.rowcount or 0

    @staticmethod
    async def _scan_status(conn: AsyncConnection, ev: ScanStatus, now: float) -> bool:
        """Record a scan's status; a completed full listing marks what it did not list as removed.
        Returns True when the scan completed here."""
        row = (await conn.execute(select(SCANS).where(SCANS.c.id == ev.scan_id))).first()
        if row is None:
            await conn.execute(
                insert(SCANS).values(
                    id=ev.scan_id,
                    bucket=ev.bucket,
                    prefix=ev.prefix,
                    state="running",
                    found=0,
                    registered=0,
                    removed=0,
                    refused_count=0,
                    started_at=ev.started_at,
                )
            )
        elif row.state != "running":
            return False  # a redelivered status of a scan already settled
        values: dict[str, Any] = {
            "found": ev.found,
            "refused_count": ev.refused_count,
            "refused_json": encode(ev.refused).decode() if ev.refused else None,
        }
        completed = ev.state == "completed"
        if ev.state != "running":
            values.update(state=ev.state, error=ev.error, finished_at=ev.at)
        if completed:
            like = ev.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            gone = await conn.execute(
                update(ASSETS)
                .where(
                    ASSETS.c.bucket == ev.bucket,
                    ASSETS.c.key.like(like, escape="\\"),
                    ASSETS.c.removed.is_(False),
                    ASSETS.c.created_at < ev.started_at,
                    or_(ASSETS.c.last_seen_scan_id.is_(None), ASSETS.c.last_seen_scan_id != ev.scan_id),
                )
                .values(removed=True, updated_at=now)
            )
            values["removed"] = gone.rowcount or 0
        await conn.execute(update(SCANS).where(SCANS.c.id == ev.scan_id).values(**values))
        return completed
