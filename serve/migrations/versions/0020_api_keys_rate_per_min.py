"""API keys: a rate of their own, besides the one their scopes give

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 05:00:00

A key's rate came only from its scopes (`report` 2400 a minute): a bridge for 60 cameras at 2 fps
needed the whole role raised, a citizens' app could not be held lower than its role. `rate_per_min`
is the key's own rate in requests a minute; NULL (every key before this revision) keeps the scopes'.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_per_min", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("rate_per_min")
