"""Catalog ingestion (batches from the streams) and reads, on real SQLite and PostgreSQL databases."""

import asyncio

import pytest

from mpr_catalog.db import Database, make_engine
from mpr_catalog.ingest import Ingestor, asset_id
from mpr_catalog.repository import Catalog
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    ObjectFound,
    ObjectRemoved,
    ScanStatus,
)


class Ctx:
    def __init__(self, db: Database) -> None:
        self.ingest = Ingestor(db)
        self.catalog = Catalog(db)


@pytest.fixture(params=["sqlite", "postgresql"])
async def ctx(request, migrated_db):
    engine = make_engine(migrated_db(request.param))  # the schema comes from the migrations, as in production
    yield Ctx(Database(engine))
    await engine.dispose()


def found(key="a.mp4", etag="e1", scan_id=None):
    return ObjectFound(bucket="in", key=key, etag=etag, size=10, scan_id=scan_id)


async def test_registration_is_idempotent(ctx):
    first = await ctx.ingest.objects([found(), found()])
    again = await ctx.ingest.objects([found()])
    assert [a.id for a in first.created] == [asset_id("in", "a.mp4", "e1")] and again.created == []
    assert (await ctx.catalog.list_assets(10, 0))[1] == 1


async def test_new_etag_is_a_new_version(ctx):
    await ctx.ingest.objects([found(etag="e1")])
    result = await ctx.ingest.objects([found(etag="e2")])
    assert len(result.created) == 1
    assets, _ = await ctx.catalog.list_assets(10, 0)
    assert [a.etag for a in assets] == ["e2"]
    assert (await ctx.catalog.list_assets(10, 0, include_removed=True))[1] == 2


async def test_a_scan_counts_registered_and_skipped_once(ctx):
    await ctx.ingest.objects([found("old.mp4", scan_id="earlier")])
    status = ScanStatus(scan_id="S", bucket="in", started_at=0)
    await ctx.ingest.objects([status, found("a.mp4", scan_id="S"), found("b.mp4", scan_id="S")])
    done = ScanStatus(scan_id="S", bucket="in", state="completed", found=3, started_at=0)
    result = await ctx.ingest.objects([found("old.mp4", scan_id="S"), done])
    scan = await ctx.catalog.get_scan("S")
    assert result.scans_completed == ["S"]
    assert (scan.state, scan.found, scan.registered, scan.skipped, scan.removed) == ("completed", 3, 2, 1, 0)
    # A redelivered end changes nothing.
    await ctx.ingest.objects([done])
    assert (await ctx.catalog.get_scan("S")).registered == 2


async def test_a_completed_scan_marks_what_it_no_longer_lists_as_removed(ctx):
    await ctx.ingest.objects([found("keep.mp4", scan_id="1"), found("gone.mp4", scan_id="1")])
    await asyncio.sleep(0.01)
    started = __import__("time").time()
    await ctx.ingest.objects(
        [
            ScanStatus(scan_id="2", bucket="in", started_at=started),
            found("keep.mp4", scan_id="2"),
            ScanStatus(scan_id="2", bucket="in", state="completed", found=1, started_at=started),
        ]
    )
    assets, total = await ctx.catalog.list_assets(10, 0)
    assert [a.key for a in assets] == ["keep.mp4"] and total == 1
    assert (await ctx.catalog.get_scan("2")).removed == 1
    # Uploaded again: visible again.
    await ctx.ingest.objects([found("gone.mp4", scan_id="3")])
    assert (await ctx.catalog.list_assets(10, 0))[1] == 2


async def test_a_prefix_scan_reconciles_only_its_prefix(ctx):
    await ctx.ingest.objects([found("a/x.mp4"), found("b/y.mp4"), found("a_b/z.mp4")])
    started = __import__("time").time() + 1
    await ctx.ingest.objects(
        [ScanStatus(scan_id="P", bucket="in", prefix="a/", state="completed", started_at=started)]
    )
    assets, _ = await ctx.catalog.list_assets(10, 0)
    assert [a.key for a in assets] == ["a_b/z.mp4", "b/y.mp4"]


async def test_remove_hides_and_reupload_restores(ctx):
    await ctx.ingest.objects([found()])
    assert (await ctx.ingest.objects([ObjectRemoved(bucket="in", key="a.mp4")])).removed == 1
    assert (await ctx.catalog.list_assets(10, 0))[1] == 0
    await ctx.ingest.objects([found()])
    assert (await ctx.catalog.list_assets(10, 0))[1] == 1


async def test_prefix_filter_escapes_wildcards(ctx):
    await ctx.ingest.objects([found("a_b/x.mp4"), found("aXb/y.mp4")])
    assets, total = await ctx.catalog.list_assets(10, 0, prefix="a_b/")
    assert total == 1 and assets[0].key == "a_b/x.mp4"


async def test_job_lifecycle_in_one_batch_and_across_batches(ctx):
    await ctx.ingest.jobs(
        [
            JobRequested(job_id="j", kind="transcode", source_key="a.mp4", output_key="o.mp4"),
            JobProgress(job_id="j", progress=40, speed=2.0, worker="w1"),
            JobProgress(job_id="j", progress=30),  # late report: progress never drops
        ]
    )
    j = await ctx.catalog.get_job("j")
    assert (j.status, j.progress, j.worker) == ("running", 40, "w1")
    await ctx.ingest.jobs([JobCompleted(job_id="j", output_key="o.mp4", output_bucket="out", output_size=99)])
    await ctx.ingest.jobs([JobFailed(job_id="j", error="late failure from a dead replica")])
    j = await ctx.catalog.get_job("j")
    assert (j.status, j.progress, j.output_size, j.error, j.output_keys) == (
        "completed",
        100,
        99,
        None,
        ["o.mp4"],
    )


async def test_out_of_order_events(ctx):
    await ctx.ingest.jobs([JobCompleted(job_id="k", output_key="o.mp4", output_bucket="out")])
    await ctx.ingest.jobs(
        [
            JobProgress(job_id="k", progress=50),
            JobRequested(job_id="k", kind="trim", source_key="a.mp4", start=1),
        ]
    )
    j = await ctx.catalog.get_job("k")
    assert (j.status, j.progress, j.kind, j.source_key) == ("completed", 100, "trim", "a.mp4")


async def test_cancel_and_fail(ctx):
    await ctx.ingest.jobs(
        [
            JobRequested(job_id="c", kind="audio", source_key="a.mp4"),
            JobCancel(job_id="c"),
            JobCompleted(job_id="c", output_key="o", output_bucket="b"),
            JobRequested(job_id="f", kind="audio", source_key="a.mp4"),
            JobFailed(job_id="f", error="moov atom not found", reason="source"),
        ]
    )
    assert (await ctx.catalog.get_job("c")).status == "cancelled"
    jobs, total = await ctx.catalog.list_jobs(10, 0, status="failed")
    assert total == 1 and (jobs[0].id, jobs[0].failure_reason) == ("f", "source")
    counts = await ctx.catalog.count_jobs_by_status()
    assert counts["cancelled"] == 1 and counts["failed"] == 1 and counts["queued"] == 0


async def test_a_repeated_event_writes_nothing(ctx):
    req = JobRequested(job_id="r", kind="audio", source_key="a.mp4")
    assert await ctx.ingest.jobs([req]) == {"r"}
    assert await ctx.ingest.jobs([req]) == set()


async def test_sizes_beyond_32_bits(ctx):
    big = 7 * 1024**3  # a 7 GiB master file
    result = await ctx.ingest.objects([ObjectFound(bucket="in", key="master.mov", etag="x", size=big)])
    assert (await ctx.catalog.get_asset(result.created[0].id)).size == big
    await ctx.ingest.jobs(
        [JobCompleted(job_id="b", output_key="o.mov", output_bucket="out", output_size=big)]
    )
    assert (await ctx.catalog.get_job("b")).output_size == big


async def test_keys_with_unicode_and_quotes(ctx):
    key = 'Ünïcode/it\'s "quoted" 50%_off.mp4'
    await ctx.ingest.objects([found(key)])
    assets, total = await ctx.catalog.list_assets(10, 0, prefix='Ünïcode/it\'s "quoted" 50%')
    assert total == 1 and assets[0].key == key


def second_replica(ctx) -> tuple[Ingestor, object]:
    """Another catalog replica on PostgreSQL; on SQLite (one catalog replica by design) the same one."""
    engine = ctx.catalog.db.engine
    if engine.dialect.name == "sqlite":
        return ctx.ingest, engine
    engine2 = make_engine(engine.url.render_as_string(hide_password=False))
    return Ingestor(Database(engine2)), engine2


async def test_concurrent_batches_register_one_object_once(ctx):
    # Several catalog replicas ingest batches holding the same object at the same moment.
    other, engine2 = second_replica(ctx)
    try:
        results = await asyncio.gather(
            *(ing.objects([found("race.mp4", scan_id="S")]) for ing in (ctx.ingest, other) * 4)
        )
    finally:
        if engine2 is not ctx.catalog.db.engine:
            await engine2.dispose()
    assert sum(len(r.created) for r in results) == 1


async def test_concurrent_job_batches(ctx):
    other, engine2 = second_replica(ctx)
    try:
        await asyncio.gather(
            ctx.ingest.jobs([JobRequested(job_id="r", kind="audio", source_key="a.mp4")]),
            *(other.jobs([JobProgress(job_id="r", progress=p)]) for p in (10, 20, 30)),
            ctx.ingest.jobs([JobCompleted(job_id="r", output_key="o.m4a", output_bucket="out")]),
        )
    finally:
        if engine2 is not ctx.catalog.db.engine:
            await engine2.dispose()
    j = await ctx.catalog.get_job("r")
    assert (j.status, j.progress, j.kind) == ("completed", 100, "audio")


async def test_many_objects_in_one_batch(ctx):
    objects = [found(f"many/{i:05d}.mp4", scan_id="big") for i in range(1200)]  # > one IN (...) chunk
    result = await ctx.ingest.objects(objects)
    assert len(result.created) == 1200
    again = await ctx.ingest.objects(objects)
    assert again.created == []
    assert (await ctx.catalog.list_assets(1, 0, prefix="many/"))[1] == 1200
