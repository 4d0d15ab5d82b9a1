"""statuses, sources, roles, reviews, states and flow steps limited to their closed sets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:00:00

Each column gets a CHECK constraint with the values of its enum in serve/cases/enums.py as they
are at this revision (written out here: a later member needs a later revision). Older databases
are mapped first, in the same transaction:

- values differing only by case or surrounding blanks (hand edits, other tools) are normalised;
- photos uploaded to POST /v1/reports without a position and without a capture time were stored
  with the upload time as `taken_at` (the old server-clock rule); it was never when they were
  taken, so it is cleared (they stay unlocated: nothing was filed from them);
- anything else stops the upgrade before any change, naming table, column, value and count, so
  that a person decides (no value is guessed, no row is lost).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATES = (
    "reported",
    "verified",
    "not_filed",
    "filed",
    "dispatched",
    "handling",
    "handled",
    "check_passed",
    "closed",
    "suspended",
    "cancelled",
    "force_closed",
)
ACTIONS = (
    "report",
    "confirm",
    "correct",
    "reject",
    "file",
    "dispatch",
    "send_back",
    "start",
    "handle",
    "check_pass",
    "check_fail",
    "suspend",
    "resume",
    "extend",
    "cancel",
    "close",
    "force_close",
)
# (table, column, constraint, allowed values, nullable)
CLOSED_SETS = (
    ("photos", "source", "ck_photos_source", ("patrol", "upload"), False),
    ("photos", "status", "ck_photos_status", ("done", "unreadable", "unlocated", "undated"), False),
    (
        "cases",
        "source",
        "ck_cases_source",
        ("patrol_photo", "video", "public", "inspector", "hotline", "leader", "media"),
        False,
    ),
    ("cases", "record_type", "ck_cases_record_type", ("event", "component"), False),
    ("cases", "state", "ck_cases_state", STATES, False),
    ("cases", "ai_review", "ck_cases_ai_review", ("pending", "confirmed", "corrected", "rejected"), True),
    (
        "evidence",
        "role",
        "ck_evidence_role",
        ("finding", "near", "far", "reference", "before", "after"),
        False,
    ),
    ("flow_log", "action", "ck_flow_log_action", ACTIONS, False),
    ("flow_log", "from_state", "ck_flow_log_from_state", STATES, True),
    ("flow_log", "to_state", "ck_flow_log_to_state", STATES, False),
)


class LegacyValueError(RuntimeError):
    """Values this revision cannot map; the message lists them so a person can fix them first."""


def upgrade() -> None:
    connection = op.get_bind()
    unknown = [
        f"{table}.{column} = {value!r} ({count} row(s))"
        for table, column, _, allowed, _ in CLOSED_SETS
        for value, count in _distinct(connection, table, column)
        if value is not None and value.strip().lower() not in allowed
    ]
    if unknown:
        raise LegacyValueError(
            "cannot limit these columns to their values: unknown " + "; ".join(unknown) + ". Update those "
            "rows to one of the values in serve/cases/enums.py, then upgrade again; nothing was changed."
        )
    for table, column, _, _, _ in CLOSED_SETS:
        target = sa.table(table, sa.column(column))
        normalised = sa.func.lower(sa.func.trim(target.c[column]))
        connection.execute(
            sa.update(target).where(target.c[column] != normalised).values({column: normalised})
        )
    photos = sa.table(
        "photos",
        sa.column("source"),
        sa.column("status"),
        sa.column("taken_at"),
        sa.column("processed_at"),
    )
    connection.execute(
        sa.update(photos)
        .where(
            photos.c.source == "upload",
            photos.c.status == "unlocated",
            photos.c.taken_at == photos.c.processed_at,
        )
        .values(taken_at=None)
    )
    for table in dict.fromkeys(table for table, *_ in CLOSED_SETS):
        with op.batch_alter_table(table) as batch:
            for owner, column, name, allowed, nullable in CLOSED_SETS:
                if owner == table:
                    values = ", ".join(f"'{value}'" for value in allowed)
                    condition = f"{column} IN ({values})"
                    batch.create_check_constraint(
                        name, f"{column} IS NULL OR {condition}" if nullable else condition
                    )


def downgrade() -> None:
    for table in dict.fromkeys(table for table, *_ in CLOSED_SETS):
        with op.batch_alter_table(table) as batch:
            for owner, _, name, _, _ in CLOSED_SETS:
                if owner == table:
                    batch.drop_constraint(name, type_="check")


def _distinct(connection: sa.Connection, table: str, column: str) -> list[tuple[str | None, int]]:
    target = sa.table(table, sa.column(column))
    query = sa.select(target.c[column], sa.func.count()).group_by(target.c[column])
    return [(value, int(count)) for value, count in connection.execute(query)]
