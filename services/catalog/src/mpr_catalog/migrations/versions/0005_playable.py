"""jobs: since when a package can be played, and its master playlist

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("playable_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("playable_key", sa.Text(), nullable=True))
    # Packages completed before: playable from their completion, as the catalog records from now on.
    op.execute(
        "UPDATE jobs SET playable_at = finished_at, playable_key = output_key "
        "WHERE kind = 'package' AND status = 'completed' AND output_key IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("playable_key")
        batch.drop_column("playable_at")
