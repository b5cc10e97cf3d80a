"""Inbound queue: Slack events recorded before the ack, so an acked event survives a process crash.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Written by hand in the style of the baseline: a new table, nothing else changes. Each process
records an event here before answering Slack with 200, claims it with a lease to answer it, and
marks it done; a sweeper in every process answers rows a killed process left behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Frozen definition (never import the live model in a migration).
    op.create_table(
        "inbound_events",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("answer_ts", sa.String(length=64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_inbound_events_due", "inbound_events", ["status", "lease_until"], unique=False)


def downgrade() -> None:
    # Only events not yet answered are lost; run it with the bots stopped.
    op.drop_index("ix_inbound_events_due", table_name="inbound_events")
    op.drop_table("inbound_events")
