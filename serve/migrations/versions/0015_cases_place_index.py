"""cases indexed by event and place: the duplicate rule's lookup stays bounded out of time order

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 03:00:00

`find_duplicate` (serve/cases/findings.py) looks for an open case of the event within the radius
and the time window. Through ix_cases_open_lookup (event, state, last_seen_at) a photo older than
the cases already filed read every later case: an archive scanned out of time order (folders per
inspector, names not dates) took 2.4 s a photo at a million cases. (event, lat, lon) reads a band
of 100 m across the city instead: 2 ms at a million.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_place_lookup", "cases", ["event", "lat", "lon"])


def downgrade() -> None:
    op.drop_index("ix_cases_place_lookup", table_name="cases")
