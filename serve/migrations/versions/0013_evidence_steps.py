"""flow-log steps detach, split and merge: a case's evidence regrouped by a person

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 00:00:00

serve/cases/regrouping.py logs each change of a case's evidence as a flow-log step of its own
(the state stays). The CHECK constraint on flow_log.action gains the three values; no row changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BEFORE = (
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
STEPS = ("detach", "split", "merge")


class RegroupedCasesError(RuntimeError):
    """A downgrade would drop flow-log steps that record where evidence went."""


def _limit_action(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("flow_log") as batch:
        batch.drop_constraint("ck_flow_log_action", type_="check")
        batch.create_check_constraint(
            "ck_flow_log_action", f"action IN ({', '.join(repr(v) for v in values)})"
        )


def upgrade() -> None:
    _limit_action((*BEFORE, *STEPS))


def downgrade() -> None:
    flow = sa.table("flow_log", sa.column("action"))
    count = op.get_bind().execute(sa.select(sa.func.count()).where(flow.c.action.in_(STEPS))).scalar_one()
    if count:
        raise RegroupedCasesError(
            f"{count} flow-log step(s) detach/split/merge record where evidence went; "
            "a database holding them cannot go below revision 0013"
        )
    _limit_action(BEFORE)
