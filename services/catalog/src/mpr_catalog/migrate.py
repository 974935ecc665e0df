"""Schema migrations (Alembic), for SQLite and PostgreSQL alike.

``mpr-catalog migrate`` (or ``python -m mpr_catalog migrate``) upgrades to head; the catalog also
upgrades at start-up unless ``CATALOG_MIGRATE=false`` (then run the command as a Kubernetes Job).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(engine: AsyncEngine, database_url: str) -> None:
    """Upgrade on the service's own engine (inside its event loop)."""
    cfg = alembic_config(database_url)

    def run(connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(run)


def main() -> None:
    from .settings import CatalogSettings

    upgrade(CatalogSettings.from_env().database_url)
