"""held citizen requests keyed by their fields: the same request sent again is one indexed lookup

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 11:00:00

A held request (no place) sent again without an Idempotency-Key is the request held before
(serve/api/open311.py, `same_held`). It was found by loading every citizen request of the event
and comparing their fields in Python: a cost that grew with every request the event ever held.
`fields_sha256` (serve/cases/fingerprints.py, `held_request_key`: the event and the fields, JSON
with keys sorted) is stored indexed; the requests held before are keyed here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from serve.cases.fingerprints import held_request_key

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("citizen_requests") as batch:
        batch.add_column(sa.Column("fields_sha256", sa.String(length=64), nullable=True))
    requests = sa.table(
        "citizen_requests",
        sa.column("id", sa.Integer),
        sa.column("event", sa.String),
        sa.column("fields", sa.JSON),
        sa.column("fields_sha256", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(requests.c.id, requests.c.event, requests.c.fields))
    keys = [{"row_id": row_id, "key": held_request_key(event, fields)} for row_id, event, fields in rows]
    if keys:
        fill = sa.update(requests).where(requests.c.id == sa.bindparam("row_id"))
        connection.execute(fill.values(fields_sha256=sa.bindparam("key")), keys)
    with op.batch_alter_table("citizen_requests") as batch:
        batch.alter_column("fields_sha256", existing_type=sa.String(length=64), nullable=False)
    op.create_index("ix_citizen_requests_fields_sha256", "citizen_requests", ["fields_sha256"])


def downgrade() -> None:
    op.drop_index("ix_citizen_requests_fields_sha256", table_name="citizen_requests")
    with op.batch_alter_table("citizen_requests") as batch:
        batch.drop_column("fields_sha256")
