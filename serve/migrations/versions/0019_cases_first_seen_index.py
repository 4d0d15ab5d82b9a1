"""cases indexed by when they were first seen: period reads stay bounded as years of cases pile up

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 02:00:00

Every period the service reads is a range of `first_seen_at`: /v1/stats and its rankings, the
daily counts, the supervision month, the ledger export, Open311's requests list and /v1/cases
with since/until. Without an index each read every case the bureau ever filed: at 200,000 cases
(benchmarks/api_large_db.py, docs/reliability.md) a month's figures read the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_first_seen_at", "cases", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_cases_first_seen_at", table_name="cases")
