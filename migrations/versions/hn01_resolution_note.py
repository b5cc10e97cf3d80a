"""The integrator's note on a resolved handoff: a nullable column on escalations.

Revision ID: hn01
Revises: ck01
Create Date: 2026-12-05

`Coach.escalation_action` stores the note (masked) when a handoff is resolved from Slack, Teams or
`coach handoffs resolve --note`; `coach kb draft-from-escalation` quotes it. Rows resolved before
this revision keep NULL: they were resolved without a note.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hn01"
down_revision: str | Sequence[str] | None = "ck01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("escalations", sa.Column("resolution_note", sa.Text(), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("resolution_note")
