"""Baseline: every state table at the first migration, and adoption of databases made before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Generated with `alembic revision --autogenerate` from the models, then made safe for the
databases schools already have: before this revision the bot made its tables with
`create_all` (plus nullable columns added in place by `bot.handoff.escalations.add_missing_columns`).
On such a database a table that exists is kept with all its rows and only completed: missing
nullable columns and missing indexes are added. A fresh database gets every table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

# Table definitions frozen as of this revision (never import the live models in a migration:
# they move on, and this revision must keep meaning what it meant). A function per table, so
# every use gets fresh Column objects.
TABLES: dict[str, Callable[[], list[sa.schema.SchemaItem]]] = {
    "escalations": lambda: [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("memory_key", sa.String(length=400), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("claimed_at", TZ, nullable=True),
        sa.Column("resolved_at", TZ, nullable=True),
        sa.Column("claimed_by_name", sa.String(length=200), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_by_name", sa.String(length=200), nullable=True),
        sa.Column("reply_to", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    ],
    "feedback": lambda: [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("turn_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ],
    "llm_usage": lambda: [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("memory_key", sa.String(length=400), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ],
    "outbox": lambda: [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("ticket", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("lease_owner", sa.String(length=120), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    ],
    "processed_events": lambda: [
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("key"),
    ],
    "teams_conversation_refs": lambda: [
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("key"),
    ],
    "teams_reply_cards": lambda: [
        sa.Column("turn_id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=300), nullable=False),
        sa.Column("conversation_id", sa.String(length=400), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("turn_id"),
    ],
    "turns": lambda: [
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("memory_key", sa.String(length=400), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("route", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("composer", sa.String(length=40), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ],
}

# (index name, columns, unique) per table.
INDEXES: dict[str, list[tuple[str, list[str], bool]]] = {
    "escalations": [("ix_escalations_memory_key", ["memory_key"], False),
                    ("ix_escalations_status", ["status"], False),
                    ("ix_escalations_target", ["target"], False)],
    "feedback": [("ix_feedback_turn_id", ["turn_id"], False),
                 ("ux_feedback_once", ["turn_id", "action", "user_id"], True)],
    "llm_usage": [("ix_llm_usage_created_at", ["created_at"], False),
                  ("ix_llm_usage_memory_key", ["memory_key"], False)],
    "outbox": [("ix_outbox_channel", ["channel"], False),
               ("ix_outbox_due", ["status", "next_attempt_at"], False),
               ("ix_outbox_escalation_id", ["escalation_id"], False)],
    "processed_events": [],
    "teams_conversation_refs": [("ix_teams_conversation_refs_kind", ["kind"], False)],
    "teams_reply_cards": [],
    "turns": [("ix_turns_created_at", ["created_at"], False),
              ("ix_turns_memory_key", ["memory_key"], False)],
}


def _complete(inspector: sa.engine.Inspector, name: str) -> None:
    """A table made before migrations: add what it lacks, never touch what it holds."""
    have = {c["name"] for c in inspector.get_columns(name)}
    for item in TABLES[name]():
        if not isinstance(item, sa.Column) or item.name in have:
            continue
        if not item.nullable:
            # Cannot happen for tables create_all made from earlier models (only nullable columns
            # were ever added); refuse rather than guess a value for existing rows.
            raise RuntimeError(f"table {name} lacks the required column {item.name}; this database was not "
                               "made by Integration Coach, or by a version this migration does not know")
        op.add_column(name, item)
    indexes = {ix["name"] for ix in inspector.get_indexes(name)}
    for index, columns, unique in INDEXES[name]:
        if index not in indexes:
            op.create_index(index, name, columns, unique=unique)


def upgrade() -> None:
    existing: set[str] = set()
    if not context.is_offline_mode():
        inspector = sa.inspect(op.get_bind())
        existing = set(inspector.get_table_names())
    for name, make in TABLES.items():
        if name in existing:
            _complete(inspector, name)
            continue
        op.create_table(name, *make())
        for index, columns, unique in INDEXES[name]:
            op.create_index(index, name, columns, unique=unique)


def downgrade() -> None:
    # Below the baseline there is no schema: going there would drop every teacher's conversation.
    raise RuntimeError("the baseline revision cannot be downgraded (it would drop every table); "
                       "restore a backup taken before the upgrade instead")
