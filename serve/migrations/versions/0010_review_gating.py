"""review gating: cases filed without review are marked; reports awaiting review have no deadline

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:30:00

An AI finding or citizen report awaiting review (reported, verified) used to get a disposal
deadline from the moment it was seen, so unreviewed findings counted as overdue. Filing (立案)
starts the clock now: the deadlines of cases never filed are cleared. Filed cases keep theirs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("auto_filed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE cases SET deadline_at = NULL WHERE state IN ('reported', 'verified', 'not_filed') "
        "AND id NOT IN (SELECT case_id FROM flow_log WHERE action = 'file')"
    )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("auto_filed")
