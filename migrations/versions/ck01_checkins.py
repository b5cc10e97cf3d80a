"""Coaching cycles: check-ins offered, scheduled, sent once and answered; teachers who turned offers off.

Revision ID: ck01
Revises: sg01
Create Date: 2026-12-04

Two new tables, nothing else changes. A check-in row is claimed with a lease by the process that
sends it (as the outbox is); `memory_key` is unique so a conversation is offered one check-in.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ck01"
down_revision: str | Sequence[str] | None = "sg01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Frozen definitions (never import the live models in a migration).
    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("memory_key", sa.String(length=400), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("thread_id", sa.String(length=200), nullable=True),
        sa.Column("platform_ref", sa.JSON(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("when_label", sa.String(length=40), nullable=True),
        sa.Column("topic", sa.String(length=200), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("offer_turn_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("choice", sa.String(length=20), nullable=True),
        sa.Column("tz", sa.String(length=64), nullable=True),
        sa.Column("due_at", TZ, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("lease_owner", sa.String(length=120), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("sent_turn_id", sa.String(length=36), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("outcome_at", TZ, nullable=True),
        sa.Column("reflection", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("memory_key"),
    )
    op.create_index("ix_checkins_due", "checkins", ["status", "due_at"], unique=False)
    op.create_index(op.f("ix_checkins_user_id"), "checkins", ["user_id"], unique=False)
    op.create_index(op.f("ix_checkins_sent_turn_id"), "checkins", ["sent_turn_id"], unique=False)
    op.create_table(
        "checkin_optouts",
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("platform", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("checkin_optouts")
    op.drop_index(op.f("ix_checkins_sent_turn_id"), table_name="checkins")
    op.drop_index(op.f("ix_checkins_user_id"), table_name="checkins")
    op.drop_index("ix_checkins_due", table_name="checkins")
    op.drop_table("checkins")
