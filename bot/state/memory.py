"""Conversation memory: each turn a teacher had with the coach, and the clicks on its replies."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from bot.models import PastTurn
from bot.state.database import Base, StateDB, utcnow


class TurnRow(Base):
    """One teacher message and what the coach did with it."""

    __tablename__ = "turns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    memory_key: Mapped[str] = mapped_column(String(400), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    route: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(200), default="")
    reply: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    composer: Mapped[str] = mapped_column(String(40), default="template")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class FeedbackRow(Base):
    """A button click on a reply; one of each kind per turn and user counts."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ux_feedback_once", "turn_id", "action", "user_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(30))
    user_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConversationMemory:
    """Turns per conversation (a Slack thread, a Teams reply chain, a replay conversation)."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def history(self, memory_key: str, limit: int = 6) -> list[PastTurn]:
        """The last `limit` turns of a conversation, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(TurnRow).where(TurnRow.memory_key == memory_key)
                .order_by(TurnRow.created_at.desc(), TurnRow.id.desc()).limit(limit)
            ).all()
        return [PastTurn(r.id, r.text, r.route, r.reply, list(r.sources or []), r.confidence, r.created_at)
                for r in reversed(rows)]

    def record(self, *, memory_key: str, platform: str, user_id: str, text: str, route: str, reason: str,
               reply: str, sources: list[str], confidence: float, composer: str,
               created_at: datetime | None = None, turn_id: str | None = None) -> str:
        """Store one turn; returns its id (the id buttons on the reply refer to).

        With `turn_id` (derived from the platform's message id) a second record of the same message
        keeps the first and returns its id.
        """
        turn_id = turn_id or str(uuid.uuid4())
        try:
            with self.db.session() as s:
                s.add(TurnRow(id=turn_id, memory_key=memory_key, platform=platform, user_id=user_id, text=text,
                              route=route, reason=reason[:200], reply=reply, sources=sources, confidence=confidence,
                              composer=composer, created_at=created_at or utcnow()))
        except IntegrityError:
            if self.turn(turn_id) is None:
                raise
        return turn_id

    def turn(self, turn_id: str) -> TurnRow | None:
        with self.db.session() as s:
            return s.get(TurnRow, turn_id)

    def add_feedback(self, turn_id: str, action: str, user_id: str) -> bool:
        """Store a click; False when the same user already gave this feedback on this turn."""
        try:
            with self.db.session() as s:
                s.add(FeedbackRow(turn_id=turn_id, action=action, user_id=user_id))
            return True
        except IntegrityError:
            return False
