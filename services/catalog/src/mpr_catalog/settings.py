from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mpr_common.settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class CatalogSettings(ServiceSettings):
    database_url: str = "sqlite+aiosqlite:///.mpr/catalog.db"
    migrate: bool = (
        True  # upgrade the schema at start-up (Alembic; serialised by an advisory lock on PostgreSQL)
    )
    probe_concurrency: int = 2
    probe_timeout: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CatalogSettings:
        e = os.environ if env is None else env
        return cls(
            **cls.common_from_env(e),
            database_url=e.get("DATABASE_URL", cls.database_url),
            migrate=e.get("CATALOG_MIGRATE", "true").lower() in ("1", "true", "yes"),
            probe_concurrency=int(e.get("CATALOG_PROBE_CONCURRENCY", "2")),
            probe_timeout=float(e.get("CATALOG_PROBE_TIMEOUT", "60")),
        )
