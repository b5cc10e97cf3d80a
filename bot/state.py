"""The state database: conversation memory, feedback, event dedupe (and, beside them, escalations).

SQLAlchemy 2 so the same code runs on SQLite (one school) and PostgreSQL (a district).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, Index, Integer, String, Text, create_engine, event, select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class StateError(RuntimeError):
    """The state database cannot be opened or written; the message says where."""


class Base(DeclarativeBase):
    pass


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


class ProcessedEventRow(Base):
    """Platform event ids already handled, so a retried delivery is answered once."""

    __tablename__ = "processed_events"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StateDB:
    """An engine and a session factory for the state database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///"):
                path = Path(url.removeprefix("sqlite:///"))
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, pool_pre_ping=True, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            Base.metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(f"cannot open the state database at {_safe_url(url)}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StateError(f"state database {_safe_url(self.url)} failed: {exc.orig}") from exc
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def claim_event(self, key: str) -> bool:
        """Record an event id; False when it was seen before (by any process sharing the database)."""
        try:
            with self.session() as s:
                s.add(ProcessedEventRow(key=key))
            return True
        except IntegrityError:
            return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _safe_url(url: str) -> str:
    # Never print a password that a database URL carries.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@dataclass(frozen=True)
class PastTurn:
    """What memory gives back of an earlier turn."""

    id: str
    text: str
    route: str
    reply: str
    sources: list[str]
    confidence: float
    created_at: datetime


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
               created_at: datetime | None = None) -> str:
        """Store one turn; returns its id (the id buttons on the reply refer to)."""
        turn_id = str(uuid.uuid4())
        with self.db.session() as s:
            s.add(TurnRow(id=turn_id, memory_key=memory_key, platform=platform, user_id=user_id, text=text,
                          route=route, reason=reason[:200], reply=reply, sources=sources, confidence=confidence,
                          composer=composer, created_at=created_at or utcnow()))
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


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
