"""jobs: a per-title package's chosen ladder (each rung's CRF, caps and why, or why it was dropped)

Revision ID: 0008_ladder
Revises: 0007_keep_outcome
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_ladder"
down_revision = "0007_keep_outcome"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("chosen_ladder_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("chosen_ladder_json")
