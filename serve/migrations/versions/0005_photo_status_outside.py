"""photo status `outside`: a located photo in no unit grid of the layout

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 22:30:00

The intake (serve/cases/intake.py) keeps such a photo with what the model saw on it and files
nothing: no street, community or department answers for the place. The CHECK constraint on
photos.status gains the value; nothing else changes, so existing rows stay as they are.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BEFORE = ("done", "unreadable", "unlocated", "undated")
AFTER = (*BEFORE, "outside")


def _limit_status(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_constraint("ck_photos_status", type_="check")
        batch.create_check_constraint("ck_photos_status", f"status IN ({', '.join(repr(v) for v in values)})")


def upgrade() -> None:
    _limit_status(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM photos WHERE status = 'outside'")  # their files stay; a scan takes them in again
    _limit_status(BEFORE)
