"""segments: one row per charging, driving or idle session

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-03 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("soc_start", sa.Float(), nullable=True),
        sa.Column("soc_end", sa.Float(), nullable=True),
        sa.Column("odometer_start_km", sa.Float(), nullable=True),
        sa.Column("odometer_end_km", sa.Float(), nullable=True),
        sa.Column("distance_km", sa.Float(), nullable=True),
        sa.Column("energy_added_kwh", sa.Float(), nullable=True),
        sa.Column("charger_kind", sa.String(length=8), nullable=False),
        sa.Column("max_power_kw", sa.Float(), nullable=True),
        sa.Column("mean_power_kw", sa.Float(), nullable=True),
        sa.Column("temp_mean_c", sa.Float(), nullable=True),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("bridged_gap", sa.Boolean(), nullable=False),
        sa.Column("estimated_start", sa.Boolean(), nullable=False),
        sa.Column("estimated_end", sa.Boolean(), nullable=False),
        sa.Column("open_start", sa.Boolean(), nullable=False),
        sa.Column("open_end", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('charging', 'driving', 'idle')", name=op.f("ck_segments_kind")
        ),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_segments")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segments_day"), ["day"], unique=False)
        batch_op.create_index(batch_op.f("ix_segments_start"), ["start"], unique=False)
        batch_op.create_index("ix_segments_vin_day", ["vin", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_index("ix_segments_vin_day")
        batch_op.drop_index(batch_op.f("ix_segments_start"))
        batch_op.drop_index(batch_op.f("ix_segments_day"))
    op.drop_table("segments")
