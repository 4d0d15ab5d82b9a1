"""supervision items: 挂牌督办 worst spots and road sections, closed by a check

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:23:34.313310
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import serve.cases.orm

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supervision_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "spot",
                "section",
                name="ck_supervision_items_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("grids", sa.JSON(), nullable=False),
        sa.Column("street", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("deadline_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "open",
                "closed",
                name="ck_supervision_items_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("open_cases_at_start", sa.Integer(), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("check_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["closed_by_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supervision_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supervision_items_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("supervision_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supervision_items_state"))

    op.drop_table("supervision_items")
