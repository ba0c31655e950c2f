"""clean quality: one data-quality record per cleaned (VIN, day)

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-02 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clean_quality",
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("rows_in", sa.Integer(), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("unmapped_rows", sa.Integer(), nullable=False),
        sa.Column("unmapped_keys", sa.Integer(), nullable=False),
        sa.Column("invalid_values", sa.Integer(), nullable=False),
        sa.Column("clamped_ts", sa.Integer(), nullable=False),
        sa.Column("superseded", sa.Integer(), nullable=False),
        sa.Column("dropped_total", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.JSON(), nullable=False),
        sa.Column("rows_out", sa.Integer(), nullable=False),
        sa.Column("gaps", sa.Integer(), nullable=False),
        sa.Column("longest_gap_s", sa.Float(), nullable=True),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleaned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vin", "day", name=op.f("pk_clean_quality")),
    )
    with op.batch_alter_table("clean_quality", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clean_quality_day"), ["day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clean_quality", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clean_quality_day"))
    op.drop_table("clean_quality")
