"""Camera states: how many times a view was accepted as the camera's reference

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 12:00:00

`POST /v1/cameras/{id}/view` accepts the view a re-aimed camera shows as its reference. A
`streetorder watch` of that camera held its own copy of the state in memory and never learnt of it:
it judged nothing on (its view moved) and saved its old reference over the accepted one. The service
now counts each acceptance here; a process that holds the camera reads the count with the state's
capture time before each frame and, where it grew, takes its own newest frame as the reference.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("camera_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("view_accepts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("camera_states", schema=None) as batch_op:
        batch_op.drop_column("view_accepts")
