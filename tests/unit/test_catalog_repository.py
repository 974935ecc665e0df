"""Catalog domain logic on a real SQLite database."""

import uuid

import pytest

from mpr_catalog.db import make_engine
from mpr_catalog.migrate import upgrade_async
from mpr_catalog.repository import Catalog, asset_id, job_view
from mpr_common.events import (
    JobCancel,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    ObjectFound,
    ObjectRemoved,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def catalog(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    else:
        url = request.getfixturevalue("postgres").create_db(f"t{uuid.uuid4().hex[:12]}")
    engine = make_engine(url)
    await upgrade_async(engine, url)  # the schema comes from the migrations, as in production
    yield Catalog(engine)
    await engine.dispose()


def found(key="a.mp4", etag="e1", scan_id=None):
    return ObjectFound(bucket="in", key=key, etag=etag, size=10, scan_id=scan_id)


async def test_register_is_idempotent(catalog):
    a1, created1 = await catalog.register(found())
    a2, created2 = await catalog.register(found())
    assert created1 and not created2 and a1.id == a2.id == asset_id("in", "a.mp4", "e1")
    assets, total = await catalog.list_assets(10, 0)
    assert total == 1


async def test_new_etag_is_a_new_version(catalog):
    await catalog.register(found(etag="e1"))
    new, created = await catalog.register(found(etag="e2"))
    assert created
    assets, total = await catalog.list_assets(10, 0)
    assert [a.etag for a in assets] == ["e2"]
    _, total_all = await catalog.list_assets(10, 0, include_removed=True)
    assert total_all == 2


async def test_scan_counts_do_not_depend_on_which_path_registered_first(catalog):
    # The JetStream consumer registered one object of scan S before the scan's own request.
    await catalog.register(found("b.mp4", scan_id="S"))
    await catalog.register(found("old.mp4", scan_id="earlier"))
    _, registered, skipped = await catalog.register_batch(
        [found("a.mp4", scan_id="S"), found("b.mp4", scan_id="S"), found("old.mp4", scan_id="S")], "S"
    )
    assert sorted(registered) == ["a.mp4", "b.mp4"] and skipped == ["old.mp4"]


async def test_remove_hides_and_reupload_restores(catalog):
    await catalog.register(found())
    assert await catalog.remove(ObjectRemoved(bucket="in", key="a.mp4")) == 1
    assert (await catalog.list_assets(10, 0))[1] == 0
    await catalog.register(found())
    assert (await catalog.list_assets(10, 0))[1] == 1


async def test_prefix_filter_escapes_wildcards(catalog):
    await catalog.register(found("a_b/x.mp4"))
    await catalog.register(found("aXb/y.mp4"))
    assets, total = await catalog.list_assets(10, 0, prefix="a_b/")
    assert total == 1 and assets[0].key == "a_b/x.mp4"


async def test_job_lifecycle(catalog):
    await catalog.record_requested(
        JobRequested(job_id="j", kind="transcode", source_key="a.mp4", output_key="o.mp4")
    )
    j = await catalog.record_progress(JobProgress(job_id="j", progress=40, speed=2.0, worker="w1"))
    assert (j.status, j.progress, j.worker) == ("running", 40, "w1")
    j = await catalog.record_progress(
        JobProgress(job_id="j", progress=30)
    )  # late report: progress never drops
    assert j.progress == 40
    j = await catalog.record_completed(
        JobCompleted(job_id="j", output_key="o.mp4", output_bucket="out", output_size=99)
    )
    assert (j.status, j.progress, j.output_size) == ("completed", 100, 99)
    j = await catalog.record_failed(JobFailed(job_id="j", error="late failure from a dead replica"))
    assert j.status == "completed" and j.error is None
    assert job_view(j).output_keys == ["o.mp4"]


async def test_out_of_order_events(catalog):
    # Completion and progress arrive before the request itself.
    await catalog.record_completed(JobCompleted(job_id="k", output_key="o.mp4", output_bucket="out"))
    await catalog.record_progress(JobProgress(job_id="k", progress=50))
    j = await catalog.record_requested(JobRequested(job_id="k", kind="trim", source_key="a.mp4", start=1))
    assert (j.status, j.progress, j.kind, j.source_key) == ("completed", 100, "trim", "a.mp4")


async def test_cancel_and_fail(catalog):
    await catalog.record_requested(JobRequested(job_id="c", kind="audio", source_key="a.mp4"))
    j = await catalog.record_cancel(JobCancel(job_id="c"))
    assert j.status == "cancelled"
    j = await catalog.record_completed(JobCompleted(job_id="c", output_key="o", output_bucket="b"))
    assert j.status == "cancelled"
    await catalog.record_requested(JobRequested(job_id="f", kind="audio", source_key="a.mp4"))
    j = await catalog.record_failed(JobFailed(job_id="f", error="moov atom not found", reason="source"))
    assert (j.status, j.failure_reason) == ("failed", "source")
    jobs, total = await catalog.list_jobs(10, 0, status="failed")
    assert total == 1 and jobs[0].id == "f"


async def test_sizes_beyond_32_bits(catalog):
    big = 7 * 1024**3  # a 7 GiB master file
    asset, _ = await catalog.register(ObjectFound(bucket="in", key="master.mov", etag="x", size=big))
    assert (await catalog.get_asset(asset.id)).size == big
    await catalog.record_completed(
        JobCompleted(job_id="b", output_key="o.mov", output_bucket="out", output_size=big)
    )
    assert (await catalog.get_job("b")).output_size == big


async def test_keys_with_unicode_and_quotes(catalog):
    key = 'Ünïcode/it\'s "quoted" 50%_off.mp4'
    await catalog.register(found(key))
    assets, total = await catalog.list_assets(10, 0, prefix='Ünïcode/it\'s "quoted" 50%')
    assert total == 1 and assets[0].key == key


async def test_concurrent_registration_of_one_object(catalog):
    import asyncio

    results = await asyncio.gather(*(catalog.register(found("race.mp4", scan_id="S")) for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert len({a.id for a, _ in results}) == 1


async def test_concurrent_job_events(catalog):
    import asyncio

    await asyncio.gather(
        catalog.record_requested(JobRequested(job_id="r", kind="audio", source_key="a.mp4")),
        *(catalog.record_progress(JobProgress(job_id="r", progress=p)) for p in (10, 20, 30)),
        catalog.record_completed(JobCompleted(job_id="r", output_key="o.m4a", output_bucket="out")),
    )
    j = await catalog.get_job("r")
    assert (j.status, j.progress, j.kind) == ("completed", 100, "audio")
