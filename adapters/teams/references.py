"""Teams conversation references and sent cards, kept in the state database.

Tables on `bot.state.database.Base`, so they live beside memory and escalations (SQLite for one
school, PostgreSQL shared by several bot processes):

- `teams_conversation_refs`: key -> the JSON of a Bot Framework ConversationReference, so a
  handoff can be announced, and a teacher told later, without waiting for them to write.
- `teams_reply_cards`: turn id -> the card sent for that turn and its activity id, so a
  button click can redraw the card to show what was chosen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.retry import retry
from bot.state.database import Base, StateDB, utcnow


class ConversationRefRow(Base):
    """Where a Teams conversation, channel or person can be reached."""

    __tablename__ = "teams_conversation_refs"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)  # conversation | channel | user
    label: Mapped[str] = mapped_column(String(300), default="")
    reference: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReplyCardRow(Base):
    """The card sent for a turn, so a click can update it in place."""

    __tablename__ = "teams_reply_cards"

    turn_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(300))
    conversation_id: Mapped[str] = mapped_column(String(400))
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class KnownConversation:
    """A stored key, for listing (`coach teams conversations`)."""

    key: str
    kind: str
    label: str
    updated_at: datetime


@dataclass(frozen=True)
class SentCard:
    """A card the bot sent, and the id Teams gave it."""

    activity_id: str
    conversation_id: str
    card: dict[str, Any]


def _is_personal(reference: dict[str, Any]) -> bool:
    conversation = reference.get("conversation") or {}
    return conversation.get("conversationType") == "personal"


def _upsert(s: Session, key: str, reference: dict[str, Any], kind: str, label: str) -> None:
    row = s.get(ConversationRefRow, key)
    if row is None:
        s.add(ConversationRefRow(key=key, kind=kind, label=label, reference=reference, updated_at=utcnow()))
        s.flush()
        return
    if kind == "user" and _is_personal(row.reference) and not _is_personal(reference):
        return  # a direct line to the person is worth more than the latest channel they used
    if row.reference != reference or row.label != label or row.kind != kind:
        row.reference, row.label, row.kind, row.updated_at = reference, label, kind, utcnow()


class ReferenceStore:
    """Conversation references and sent cards, by key, in the state database."""

    def __init__(self, db: StateDB) -> None:
        self.db = db  # its tables are made by the migrations (revision 0001), as every state table is

    # -- references --------------------------------------------------------------------------

    def save(self, key: str, reference: dict[str, Any], *, kind: str, label: str = "") -> None:
        """Store (or refresh) the reference under `key`. A person's one-to-one chat is not replaced by a channel."""
        self._write([(key, reference, kind, label)])

    def save_all(self, entries: Iterable[Any]) -> None:
        """Store several `translate.StoredReference` entries in one transaction."""
        self._write([(e.key, e.reference, e.kind, e.label) for e in entries])

    def _write(self, rows: list[tuple[str, dict[str, Any], str, str]]) -> None:
        if not rows:
            return
        def write() -> None:
            with self.db.session() as s:
                for key, reference, kind, label in rows:
                    _upsert(s, key, reference, kind, label[:300])

        retry(write, on=IntegrityError, attempts=2)  # two processes stored the same new key at once; the retry updates

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored reference JSON, or None."""
        with self.db.session() as s:
            row = s.get(ConversationRefRow, key)
            return dict(row.reference) if row is not None else None

    def known(self, kind: str | None = None) -> list[KnownConversation]:
        """Every stored key, newest first."""
        query = select(ConversationRefRow).order_by(ConversationRefRow.updated_at.desc())
        if kind:
            query = query.where(ConversationRefRow.kind == kind)
        with self.db.session() as s:
            return [KnownConversation(r.key, r.kind, r.label, r.updated_at) for r in s.scalars(query)]

    # -- cards -------------------------------------------------------------------------------

    def save_card(self, turn_id: str, activity_id: str, conversation_id: str, card: dict[str, Any]) -> None:
        """Remember the card sent for a turn (the latest wins)."""
        with self.db.session() as s:
            row = s.get(ReplyCardRow, turn_id)
            if row is None:
                s.add(ReplyCardRow(turn_id=turn_id, activity_id=activity_id, conversation_id=conversation_id,
                                   card=card, created_at=utcnow()))
            else:
                row.activity_id, row.conversation_id, row.card = activity_id, conversation_id, card

    def card(self, turn_id: str) -> SentCard | None:
        """The card sent for a turn, or None."""
        with self.db.session() as s:
            row = s.get(ReplyCardRow, turn_id)
            return SentCard(row.activity_id, row.conversation_id, dict(row.card)) if row is not None else None
