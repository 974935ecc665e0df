from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import ServiceSettings, env


@dataclass(frozen=True, slots=True)
class CatalogSettings(ServiceSettings):
    database_url: str = env("DATABASE_URL", default="sqlite+aiosqlite:///.mpr/catalog.db")
    # upgrade the schema at start-up (Alembic; serialised by an advisory lock on PostgreSQL)
    migrate: bool = env("CATALOG_MIGRATE", default=True)
    probe_concurrency: int = env("CATALOG_PROBE_CONCURRENCY", default=2)
    probe_timeout: float = env("CATALOG_PROBE_TIMEOUT", default=60.0)
    # ffprobe's CPU priority (nice): probing yields to listing and ingestion on a busy machine
    probe_nice: int = env("CATALOG_PROBE_NICE", default=10)
