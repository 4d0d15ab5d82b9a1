"""cases, evidence, photos, flow log

Revision ID: 0001
Revises:
Create Date: 2026-11-22 07:28:56.555139
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import serve.cases.orm

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_counters",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("record_type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("major", sa.String(length=4), nullable=False),
        sa.Column("cjt214", sa.String(length=8), nullable=False),
        sa.Column("gbt47678", sa.String(length=8), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("street", sa.String(length=64), nullable=True),
        sa.Column("community", sa.String(length=64), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("ai_review", sa.String(length=16), nullable=True),
        sa.Column("camera_id", sa.String(length=64), nullable=True),
        sa.Column("filed_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index("ix_cases_open_lookup", ["event", "state", "last_seen_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_street"), ["street"], unique=False)

    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("taken_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("detections", sa.JSON(), nullable=True),
        sa.Column("processed_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("captured_at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("boxes", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("crop_path", sa.Text(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["photos.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_evidence_photo_id"), ["photo_id"], unique=False)

    op.create_table(
        "flow_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("at", serve.cases.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seconds_used", sa.Float(), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("flow_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_log_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flow_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_log_case_id"))

    op.drop_table("flow_log")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_photo_id"))
        batch_op.drop_index(batch_op.f("ix_evidence_case_id"))

    op.drop_table("evidence")
    op.drop_table("photos")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_street"))
        batch_op.drop_index(batch_op.f("ix_cases_state"))
        batch_op.drop_index("ix_cases_open_lookup")
        batch_op.drop_index(batch_op.f("ix_cases_grid_code"))

    op.drop_table("cases")
    op.drop_table("case_counters")
