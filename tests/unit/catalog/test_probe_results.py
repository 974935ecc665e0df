"""Probe results recorded in batches: one transaction for many assets, on real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mpr_catalog.db import Database, make_engine
from mpr_catalog.ingest import Ingestor, ProbeResult
from mpr_catalog.repository import Catalog
from mpr_common.events import MediaInfo, ObjectFound


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, migrated_db):
    engine = make_engine(migrated_db(request.param))
    yield Database(engine)
    await engine.dispose()


async def test_a_batch_of_results_is_recorded_in_one_go(db):
    ingest, catalog = Ingestor(db), Catalog(db)
    found = [ObjectFound(bucket="in", key=f"k{i}.mp4", etag="e", size=10) for i in range(600)]
    assets = (await ingest.objects(found)).created
    assert len(assets) == 600
    results = [
        ProbeResult(a, MediaInfo(duration=float(i), video_codec="h264"), None)
        if i % 3
        else ProbeResult(a, None, "Invalid data found when processing input")
        for i, a in enumerate(assets)
    ]
    gone = ProbeResult(assets[0].__class__("0" * 32, "in", "gone.mp4", "e", 1), None, "x")
    statements: list[str] = []

    from sqlalchemy import event

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    recorded = await ingest.probe_results([*results, gone])
    assert len(statements) == 1  # one executemany, not one statement per asset
    assert len(recorded) == 600 and {row.id for row, _ in recorded} == {a.id for a in assets}
    for row, r in recorded:
        assert r.asset.id == row.id
        assert row.probe_status == ("ok" if r.info else "error")
    stored = {a.key: a for a in (await catalog.list_assets(1000, 0))[0]}
    assert stored["k1.mp4"].probe_status == "ok" and stored["k1.mp4"].info == MediaInfo(
        duration=1.0, video_codec="h264"
    )
    assert stored["k0.mp4"].probe_status == "error"
    assert stored["k0.mp4"].probe_error == "Invalid data found when processing input"
    assert await catalog.pending_probes(10) == []


async def test_the_last_result_of_an_asset_wins(db):
    ingest, catalog = Ingestor(db), Catalog(db)
    (asset,) = (await ingest.objects([ObjectFound(bucket="in", key="a.mp4", etag="e", size=10)])).created
    first = ProbeResult(asset, None, "storage hiccup")
    second = ProbeResult(asset, MediaInfo(duration=2.0), None)
    ((row, r),) = await ingest.probe_results([first, second])
    assert r is second and row.probe_status == "ok"
    assert (await catalog.list_assets(10, 0))[0][0].info == MediaInfo(duration=2.0)
