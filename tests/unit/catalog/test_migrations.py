"""Alembic migrations: upgrade/downgrade round trip, and the models match the migrated schema."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from mpr_catalog.db import make_engine
from mpr_catalog.migrate import downgrade, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("postgres").create_db(f"m{uuid.uuid4().hex[:12]}")


async def _inspect(url: str):
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), SQLModel.metadata
                )
            )
        return tables, diff
    finally:
        await engine.dispose()


def test_upgrade_matches_models_and_downgrade_round_trips(database_url):
    import asyncio

    upgrade(database_url)
    tables, diff = asyncio.run(_inspect(database_url))
    assert {"assets", "jobs", "alembic_version"} <= tables
    assert diff == [], f"models and migrations disagree: {diff}"
    downgrade(database_url)
    tables, _ = asyncio.run(_inspect(database_url))
    assert tables <= {"alembic_version"}
    upgrade(database_url)  # and back up again
