from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mpr_common.settings import NatsSettings, S3Settings


@dataclass(frozen=True, slots=True)
class CatalogSettings:
    database_url: str = "sqlite+aiosqlite:///.mpr/catalog.db"
    migrate: bool = (
        True  # upgrade the schema at start-up (Alembic; serialised by an advisory lock on PostgreSQL)
    )
    probe_concurrency: int = 2
    probe_timeout: float = 60.0
    metrics_port: int = 0  # /metrics and /health/* (0 = off)
    log_level: str = "INFO"
    log_format: str = "json"
    s3: S3Settings = field(default_factory=S3Settings)
    nats: NatsSettings = field(default_factory=NatsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CatalogSettings:
        e = os.environ if env is None else env
        return cls(
            database_url=e.get("DATABASE_URL", cls.database_url),
            migrate=e.get("CATALOG_MIGRATE", "true").lower() in ("1", "true", "yes"),
            probe_concurrency=int(e.get("CATALOG_PROBE_CONCURRENCY", "2")),
            probe_timeout=float(e.get("CATALOG_PROBE_TIMEOUT", "60")),
            metrics_port=int(e.get("METRICS_PORT", "0")),
            log_level=e.get("LOG_LEVEL", "INFO"),
            log_format=e.get("LOG_FORMAT", "json"),
            s3=S3Settings.from_env(e),
            nats=NatsSettings.from_env(e),
        )
