"""Catalog databases for the catalog's tests: each test its own, at the schema's head.

Migrating a database costs about 0.07 CPU-s (Alembic and SQLAlchemy's DDL) and some 70 tests each
wanted one. So the migrations run once per test process and backend, into a template that each test's
database is copied from (a file copy on SQLite, ``createdb -T`` on PostgreSQL): the schema still comes
from the migrations, as in production. test_migrations.py runs them on databases of its own."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mpr_catalog.db import make_engine
from mpr_catalog.migrate import upgrade_async

TEMPLATE = "catalog_head"  # the PostgreSQL database every test's database is copied from


def _migrate(url: str) -> None:
    async def run() -> None:
        engine = make_engine(url)
        try:
            await upgrade_async(engine, url)
        finally:
            await engine.dispose()  # a template is copied only while nobody is connected to it

    # In a thread of its own: the fixture that first asks for a template may run in a test's event loop.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "head.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres) -> str:
    _migrate(postgres.create_db(TEMPLATE))
    return TEMPLATE


@pytest.fixture
def migrated_db(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Makes a database of its own for the test, on ``"sqlite"`` or ``"postgresql"``, at the schema's
    head: its URL."""

    def make(backend: str) -> str:
        name = f"t{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            path = tmp_path / f"{name}.db"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
            return f"sqlite+aiosqlite:///{path}"
        assert backend == "postgresql", backend
        template = request.getfixturevalue("postgres_template")
        return request.getfixturevalue("postgres").create_db(name, template=template)

    return make
