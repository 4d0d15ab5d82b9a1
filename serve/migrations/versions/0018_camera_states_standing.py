"""camera states: the violations each camera sees standing, with their cases

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 09:00:00

Cameras within the duplicate radius (50 m) feed the same case. A camera whose violation cleared
proposed `resolved` while another camera's violation of that case still stood. Each camera's state
row now lists its standing violations and their cases, written with its events in one transaction,
so the clear of one camera reads the others' (serve/cases/cameras.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("camera_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("standing", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("camera_states", schema=None) as batch_op:
        batch_op.drop_column("standing")
