"""evidence found by its hashes through indexes: sha256 indexed, the phash's three bands stored indexed

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 03:20:00

Every photo a scan takes is checked against the evidence already stored (serve/cases/intake.py,
`copies_of`); without indexes that read every evidence row for every photo, so an archive scan
slowed with each case it filed (0.5 s a photo at 10,000 evidence rows). The bands
(vision.core.phash.hash_bands) of the rows that have a phash are filled in here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vision.core.phash import hash_bands

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BANDS = ("phash_band0", "phash_band1", "phash_band2")


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        for column in BANDS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
    bands = [sa.column(c, sa.Integer) for c in BANDS]
    evidence = sa.table("evidence", sa.column("id", sa.Integer), sa.column("phash", sa.String), *bands)
    connection = op.get_bind()
    hashed = connection.execute(
        sa.select(evidence.c.id, evidence.c.phash).where(evidence.c.phash.is_not(None))
    )
    values = [
        {"row_id": row_id, **dict(zip(BANDS, hash_bands(phash), strict=True))} for row_id, phash in hashed
    ]
    if values:
        fill = sa.update(evidence).where(evidence.c.id == sa.bindparam("row_id"))
        connection.execute(fill.values({c: sa.bindparam(c) for c in BANDS}), values)
    op.create_index("ix_evidence_sha256", "evidence", ["sha256"])
    for column in BANDS:
        op.create_index(f"ix_evidence_{column}", "evidence", [column])


def downgrade() -> None:
    for column in BANDS:
        op.drop_index(f"ix_evidence_{column}", table_name="evidence")
    op.drop_index("ix_evidence_sha256", table_name="evidence")
    with op.batch_alter_table("evidence") as batch:
        for column in BANDS:
            batch.drop_column(column)
