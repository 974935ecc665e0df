"""The database: engine creation (SQLite gets WAL and a busy timeout) and the one way to write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import models  # noqa: F401  (registers the tables)

T = TypeVar("T")


def make_engine(database_url: str) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Writes go through :meth:`transaction`: SQLite allows one writer, so writes are serialised
    in-process there instead of failing with "database is locked"; PostgreSQL locks rows instead."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.locks_rows = engine.dialect.name != "sqlite"
        self._write_lock = None if self.locks_rows else asyncio.Lock()

    async def transaction(self, fn: Callable[[AsyncConnection], Awaitable[T]], attempts: int = 3) -> T:
        """Run ``fn`` in one transaction. A row inserted meanwhile by another replica (IntegrityError)
        reruns it from the start, when its reads see that row."""
        for attempt in range(1, attempts + 1):
            try:
                if self._write_lock is None:
                    async with self.engine.begin() as conn:
                        return await fn(conn)
                async with self._write_lock, self.engine.begin() as conn:
                    return await fn(conn)
            except IntegrityError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")
