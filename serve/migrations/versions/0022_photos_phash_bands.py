"""photos' phash bands, indexed over the photos filed in no case (unlocated, undated, outside)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 18:30:00

A copy of a photo (re-saved smaller, its EXIF gone) scanned before its original is kept unlocated;
when the original came later and filed its cases, the copy stayed unlocated for ever, where the
other order joins the copy to the original's case (serve/cases/intake.py, `join_as_copy`). A photo
whose findings are filed now finds those waiting copies of itself (`waiting_copies`) through the
bands of their perceptual hash (vision.core.phash.hash_bands), indexed over the unfiled photos
alone; the bands of the photos that have a phash are filled in here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vision.core.phash import hash_bands

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

BANDS = ("phash_band0", "phash_band1", "phash_band2")
CHUNK = 10_000
UNFILED = sa.text("status IN ('unlocated', 'undated', 'outside')")


def banded(phash: str) -> dict[str, int]:
    return dict(zip(BANDS, hash_bands(phash), strict=True))


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        for column in BANDS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
    bands = [sa.column(c, sa.Integer) for c in BANDS]
    photos = sa.table("photos", sa.column("id", sa.Integer), sa.column("phash", sa.String), *bands)
    connection = op.get_bind()
    fill = sa.update(photos).where(photos.c.id == sa.bindparam("row_id"))
    fill = fill.values({c: sa.bindparam(c) for c in BANDS})
    last = 0
    while True:  # in chunks by id: a scanned archive holds millions of photos
        hashed = connection.execute(
            sa.select(photos.c.id, photos.c.phash)
            .where(photos.c.phash.is_not(None), photos.c.id > last)
            .order_by(photos.c.id)
            .limit(CHUNK)
        ).all()
        if not hashed:
            break
        connection.execute(fill, [{"row_id": row_id, **banded(phash)} for row_id, phash in hashed])
        last = hashed[-1][0]
    for column in BANDS:
        op.create_index(
            f"ix_photos_unfiled_{column}", "photos", [column], sqlite_where=UNFILED, postgresql_where=UNFILED
        )


def downgrade() -> None:
    for column in BANDS:
        op.drop_index(f"ix_photos_unfiled_{column}", table_name="photos")
    with op.batch_alter_table("photos") as batch:
        for column in BANDS:
            batch.drop_column(column)
