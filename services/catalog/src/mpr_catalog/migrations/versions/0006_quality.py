"""jobs: the quality of a job's video output (PSNR/SSIM against its source), and a package's by rendition

Revision ID: 0006_quality
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_quality"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("quality_json", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rendition_quality_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("rendition_quality_json")
        batch.drop_column("quality_json")
