"""jobs: a completed job's outcome (its output kept, or not kept by its keep_if) and the verdict

Revision ID: 0007_keep_outcome
Revises: 0006_quality
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_keep_outcome"
down_revision = "0006_quality"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("keep_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("keep_json")
        batch.drop_column("outcome")
