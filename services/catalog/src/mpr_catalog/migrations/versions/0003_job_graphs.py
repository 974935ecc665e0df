"""jobs: package children (parent_id, rendition, weight) and loudness normalisation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("loudnorm", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("loudness_json", sa.Text(), nullable=True))
        batch.add_column(sa.Column("parent_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("rendition", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch.add_column(sa.Column("weight", sa.Float(), nullable=False, server_default="1.0"))
        batch.create_index("ix_jobs_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_parent_id")
        for column in ("weight", "rendition", "parent_id", "loudness_json", "loudnorm"):
            batch.drop_column(column)
