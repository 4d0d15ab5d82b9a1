"""unreadable photos indexed by path; those a later read of their path superseded are dropped

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 10:00:00

A scan records a file it cannot use as an `unreadable` photo with the reason. When the file was
replaced by a good copy (other bytes, another row) or its bytes decode now, the failure stayed in
the report beside the photo that now reads. A scan's read of a path now supersedes the path's
earlier unreadable rows (serve/cases/intake.py, `supersede_unreadable`), a lookup by path for
every photo recorded: ix_photos_unreadable_path, over the unreadable rows alone. The rows a later
row of the same path superseded before this revision are dropped here (a failure is no history
the schema keeps: scan.log has it); downgrading drops the index and restores none of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UNREADABLE = sa.text("status = 'unreadable'")


def upgrade() -> None:
    photos = sa.table(
        "photos", sa.column("id", sa.Integer), sa.column("path", sa.Text), sa.column("status", sa.String)
    )
    later = photos.alias("later")
    superseded = sa.exists().where(later.c.path == photos.c.path, later.c.id > photos.c.id)
    op.execute(sa.delete(photos).where(photos.c.status == "unreadable", superseded))
    op.create_index(
        "ix_photos_unreadable_path",
        "photos",
        ["path"],
        sqlite_where=UNREADABLE,
        postgresql_where=UNREADABLE,
    )


def downgrade() -> None:
    op.drop_index("ix_photos_unreadable_path", table_name="photos")
