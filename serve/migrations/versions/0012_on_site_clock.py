"""on-site clock: 双十 classes must have someone on site by cases.on_site_due_at

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 23:45:00

Cases filed before this revision have no on-site clock (null).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import serve.cases.orm

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(
            sa.Column("on_site_due_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("on_site_due_at")
