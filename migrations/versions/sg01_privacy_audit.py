"""Privacy audit log: every export, erase and retention purge, with counts.

Revision ID: sg01
Revises: 0002
Create Date: 2026-12-04

A new table, nothing else changes. The teacher an export or erase was about is kept only as a
SHA-256 digest of their id, so the log outlives the erase without holding the id.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sg01"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Frozen definition (never import the live model in a migration).
    op.create_table(
        "privacy_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_privacy_audit_action", "privacy_audit", ["action"], unique=False)
    op.create_index("ix_privacy_audit_created_at", "privacy_audit", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_privacy_audit_created_at", table_name="privacy_audit")
    op.drop_index("ix_privacy_audit_action", table_name="privacy_audit")
    op.drop_table("privacy_audit")
