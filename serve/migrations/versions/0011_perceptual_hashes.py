"""perceptual hashes of photos and evidence: a copy of a photo is known by its look, not only its bytes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 23:15:00

Rows written before stay without a hash (null): they are recognised by sha256 only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("photos", "evidence"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("phash", sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in ("photos", "evidence"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("phash")
