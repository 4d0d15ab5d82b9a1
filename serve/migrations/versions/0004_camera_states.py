"""camera states: engine state that survives a restart

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import serve.cases.orm

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_states",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("captured_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("saved_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("camera_id"),
    )


def downgrade() -> None:
    op.drop_table("camera_states")
