"""assets and jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("last_modified", sa.Float(), nullable=True),
        sa.Column("probe_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("probe_error", sa.Text(), nullable=True),
        sa.Column("info_json", sa.Text(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("first_scan_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bucket", "key", "etag", name="uq_assets_bucket_key_etag"),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index("ix_assets_bucket_key", ["bucket", "key"], unique=False)
        batch_op.create_index(batch_op.f("ix_assets_probe_status"), ["probe_status"], unique=False)
        batch_op.create_index(batch_op.f("ix_assets_removed"), ["removed"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("source_bucket", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("output_bucket", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=True),
        sa.Column("output_key", sa.Text(), nullable=True),
        sa.Column("output_keys_json", sa.Text(), nullable=True),
        sa.Column("output_size", sa.BigInteger(), nullable=True),
        sa.Column("preset", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("start", sa.Float(), nullable=True),
        sa.Column("end", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failure_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_created_at"))

    op.drop_table("jobs")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_removed"))
        batch_op.drop_index(batch_op.f("ix_assets_probe_status"))
        batch_op.drop_index("ix_assets_bucket_key")

    op.drop_table("assets")
