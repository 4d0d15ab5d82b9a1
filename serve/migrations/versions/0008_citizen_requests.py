"""citizen requests held for a person to place (Open311 tokens)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import serve.cases.orm

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "citizen_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("reporter", sa.String(length=64), nullable=False),
        sa.Column("received_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("placed_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("placed_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_citizen_requests_received_at", "citizen_requests", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_citizen_requests_received_at", table_name="citizen_requests")
    op.drop_table("citizen_requests")
