"""Check-ins as rows in the state database, sent once with a lease, like the handoff outbox.

One row per conversation (a unique memory key), so a conversation is offered a check-in at most
once even with several processes answering it. A row moves

    offered ──choice──► scheduled ──claim──► sending ──ok──► sent ──answer──► answered
       │                    ▲                  │
       └─no thanks─► declined   └── retry / lease ran out (the process died) ──┘
    scheduled ──"stop" / `coach checkins cancel`──► cancelled

A claim is a conditional UPDATE (`status` still due, or a lease run out): on SQLite and on
PostgreSQL only one process's UPDATE matches, so a check-in is sent by whichever process is free,
once. The clock is passed in so tests can stand at any local time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from bot.state.database import Base, StateDB, aware, rows_changed, utcnow


class CheckinStatus(str, Enum):
    """Where a check-in is in its life."""

    OFFERED = "offered"
    DECLINED = "declined"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    FAILED = "failed"


PENDING_STATUSES = (CheckinStatus.OFFERED, CheckinStatus.SCHEDULED, CheckinStatus.SENDING)


class Outcome(str, Enum):
    """How the teacher said it went."""

    WENT_WELL = "went_well"
    MIXED = "mixed"
    NOT_YET = "not_yet"


class CheckinRow(Base):
    """One offered check-in for one conversation, and what became of it."""

    __tablename__ = "checkins"
    __table_args__ = (Index("ix_checkins_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    memory_key: Mapped[str] = mapped_column(String(400), unique=True)  # one offer per conversation
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    conversation_id: Mapped[str] = mapped_column(String(200))
    thread_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    platform_ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    plan: Mapped[str] = mapped_column(Text, default="")  # "try exit tickets with 9B", second person
    when_label: Mapped[str | None] = mapped_column(String(40), nullable=True)  # "thursday", "tomorrow", ...
    topic: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the knowledge entry coached on
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    offer_turn_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=CheckinStatus.OFFERED.value)
    choice: Mapped[str | None] = mapped_column(String(20), nullable=True)
    tz: Mapped[str | None] = mapped_column(String(64), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_turn_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reflection: Mapped[str | None] = mapped_column(Text, nullable=True)  # the teacher's first words after the check-in
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CheckinOptOutRow(Base):
    """A teacher who turned check-in offers off for good."""

    __tablename__ = "checkin_optouts"

    platform: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class NewOffer:
    """What is recorded when a reply offers a check-in."""

    memory_key: str
    platform: str
    user_id: str
    conversation_id: str
    thread_id: str | None
    platform_ref: dict[str, Any]
    plan: str
    when_label: str | None
    topic: str | None
    sources: list[str]
    offer_turn_id: str | None = None


class Checkins:
    """The check-in rows: offers, choices, the leased claim that sends each once, outcomes."""

    def __init__(self, db: StateDB, *, clock: Callable[[], datetime] = utcnow, lease_seconds: float = 120.0) -> None:
        self.db = db
        self.clock = clock
        self.lease_seconds = lease_seconds

    # -- offers and choices ------------------------------------------------------------------

    def offered_in(self, memory_key: str) -> bool:
        """Whether this conversation was offered a check-in already."""
        with self.db.session() as s:
            return s.scalar(select(CheckinRow.id).where(CheckinRow.memory_key == memory_key)) is not None

    def offer(self, offer: NewOffer) -> int | None:
        """Record an offer; None when the conversation had one already (any process may have written it)."""
        now = self.clock()
        try:
            with self.db.session() as s:
                row = CheckinRow(memory_key=offer.memory_key, platform=offer.platform, user_id=offer.user_id,
                                 conversation_id=offer.conversation_id, thread_id=offer.thread_id,
                                 platform_ref=offer.platform_ref, plan=offer.plan, when_label=offer.when_label,
                                 topic=offer.topic, sources=offer.sources, offer_turn_id=offer.offer_turn_id,
                                 status=CheckinStatus.OFFERED.value, attempts=0, created_at=now, updated_at=now)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None

    def set_offer_turn(self, checkin_id: int, turn_id: str) -> None:
        """The turn whose buttons carry the offer (written once the turn is recorded)."""
        self._update(checkin_id, offer_turn_id=turn_id)

    def by_offer_turn(self, turn_id: str) -> CheckinRow | None:
        with self.db.session() as s:
            return s.scalars(select(CheckinRow).where(CheckinRow.offer_turn_id == turn_id)).first()

    def by_sent_turn(self, turn_id: str) -> CheckinRow | None:
        with self.db.session() as s:
            return s.scalars(select(CheckinRow).where(CheckinRow.sent_turn_id == turn_id)).first()

    def get(self, checkin_id: int) -> CheckinRow | None:
        with self.db.session() as s:
            return s.get(CheckinRow, checkin_id)

    def schedule(self, checkin_id: int, choice: str, due_at: datetime, tz: str | None) -> bool:
        """Offered (or not yet sent) to scheduled at `due_at`; False when it was already decided or sent."""
        return self._transition(checkin_id, (CheckinStatus.OFFERED, CheckinStatus.SCHEDULED, CheckinStatus.ANSWERED),
                                status=CheckinStatus.SCHEDULED.value, choice=choice, due_at=due_at, tz=tz,
                                attempts=0, lease_until=None, sent_turn_id=None, sent_at=None)

    def set_when(self, checkin_id: int, when_label: str) -> None:
        """The named day, once a relative one ("tomorrow") is fixed to a weekday."""
        self._update(checkin_id, when_label=when_label)

    def decline(self, checkin_id: int) -> bool:
        return self._transition(checkin_id, (CheckinStatus.OFFERED,), status=CheckinStatus.DECLINED.value)

    def cancel(self, checkin_id: int) -> bool:
        """Cancel one check-in not yet sent."""
        return self._transition(checkin_id, (CheckinStatus.OFFERED, CheckinStatus.SCHEDULED),
                                status=CheckinStatus.CANCELLED.value)

    def cancel_all(self, platform: str, user_id: str) -> int:
        """A teacher's "stop": every check-in of theirs not yet sent is cancelled; returns how many."""
        now = self.clock()
        with self.db.session() as s:
            result = s.execute(update(CheckinRow).where(
                CheckinRow.platform == platform, CheckinRow.user_id == user_id,
                CheckinRow.status.in_([CheckinStatus.OFFERED.value, CheckinStatus.SCHEDULED.value]))
                .values(status=CheckinStatus.CANCELLED.value, updated_at=now)
                .execution_options(synchronize_session=False))
            return rows_changed(result)

    def opt_out(self, platform: str, user_id: str) -> None:
        """No more offers for this teacher, ever (until they ask again)."""
        try:
            with self.db.session() as s:
                s.add(CheckinOptOutRow(platform=platform, user_id=user_id, created_at=self.clock()))
        except IntegrityError:
            pass

    def opt_in(self, platform: str, user_id: str) -> None:
        with self.db.session() as s:
            s.execute(delete(CheckinOptOutRow).where(CheckinOptOutRow.platform == platform,
                                                     CheckinOptOutRow.user_id == user_id))

    def opted_out(self, platform: str, user_id: str) -> bool:
        with self.db.session() as s:
            return s.get(CheckinOptOutRow, (platform, user_id)) is not None

    def record_outcome(self, checkin_id: int, outcome: Outcome) -> bool:
        """The teacher's answer to a sent check-in; False when an answer was recorded already."""
        return self._transition(checkin_id, (CheckinStatus.SENT,), status=CheckinStatus.ANSWERED.value,
                                outcome=outcome.value, outcome_at=self.clock())

    def note_reflection(self, checkin_id: int, text: str) -> bool:
        """Keep the teacher's first words after a check-in (their view of how it went); once."""
        with self.db.session() as s:
            result = s.execute(update(CheckinRow).where(CheckinRow.id == checkin_id, CheckinRow.reflection.is_(None))
                               .values(reflection=text[:1000], updated_at=self.clock())
                               .execution_options(synchronize_session=False))
            return rows_changed(result) == 1

    # -- sending -----------------------------------------------------------------------------

    def _due(self, now: datetime) -> Any:
        return or_(and_(CheckinRow.status == CheckinStatus.SCHEDULED.value, CheckinRow.due_at <= now),
                   and_(CheckinRow.status == CheckinStatus.SENDING.value, CheckinRow.lease_until < now))

    def claim_due(self, owner: str, platforms: list[str]) -> CheckinRow | None:
        """Take one due check-in for this process (a lease), or None when none is due or others hold them."""
        now = self.clock()
        with self.db.session() as s:
            ids = list(s.scalars(select(CheckinRow.id).where(self._due(now), CheckinRow.platform.in_(platforms))
                                 .order_by(CheckinRow.due_at, CheckinRow.id).limit(10)))
        for row_id in ids:
            with self.db.session() as s:
                result = s.execute(update(CheckinRow).where(CheckinRow.id == row_id, self._due(now)).values(
                    status=CheckinStatus.SENDING.value, lease_owner=owner,
                    lease_until=now + timedelta(seconds=self.lease_seconds),
                    attempts=CheckinRow.attempts + 1, updated_at=now).execution_options(synchronize_session=False))
                if rows_changed(result) == 1:
                    return s.get(CheckinRow, row_id)
        return None

    def postpone(self, checkin_id: int, owner: str, due_at: datetime, error: str | None = None) -> None:
        """Give a claimed check-in back, due again at `due_at` (outside school hours, or a failed send)."""
        now = self.clock()
        with self.db.session() as s:
            s.execute(update(CheckinRow).where(CheckinRow.id == checkin_id, CheckinRow.lease_owner == owner,
                                               CheckinRow.status == CheckinStatus.SENDING.value)
                      .values(status=CheckinStatus.SCHEDULED.value, due_at=due_at, lease_until=None,
                              last_error=error, updated_at=now).execution_options(synchronize_session=False))

    def set_sent_turn(self, checkin_id: int, turn_id: str) -> None:
        """The turn the check-in message is recorded as (written before sending, so buttons resolve)."""
        self._update(checkin_id, sent_turn_id=turn_id)

    def mark_sent(self, checkin_id: int, owner: str, receipt: dict[str, Any] | None) -> bool:
        now = self.clock()
        with self.db.session() as s:
            result = s.execute(update(CheckinRow).where(CheckinRow.id == checkin_id, CheckinRow.lease_owner == owner,
                                                        CheckinRow.status == CheckinStatus.SENDING.value)
                               .values(status=CheckinStatus.SENT.value, sent_at=now, receipt=receipt,
                                       lease_until=None, last_error=None, updated_at=now)
                               .execution_options(synchronize_session=False))
            return rows_changed(result) == 1

    def mark_failed(self, checkin_id: int, owner: str, error: str) -> None:
        self._update(checkin_id, status=CheckinStatus.FAILED.value, last_error=error[:500], lease_until=None)

    def next_due(self) -> datetime | None:
        with self.db.session() as s:
            value = s.scalar(select(CheckinRow.due_at).where(CheckinRow.status == CheckinStatus.SCHEDULED.value)
                             .order_by(CheckinRow.due_at).limit(1))
        return aware(value)

    # -- reading -----------------------------------------------------------------------------

    def rows(self, *, platform: str | None = None, user_id: str | None = None,
             statuses: tuple[CheckinStatus, ...] | None = None, limit: int = 200) -> list[CheckinRow]:
        """Check-ins, newest first, filtered by teacher and status."""
        query = select(CheckinRow).order_by(CheckinRow.created_at.desc(), CheckinRow.id.desc()).limit(limit)
        if platform is not None:
            query = query.where(CheckinRow.platform == platform)
        if user_id is not None:
            query = query.where(CheckinRow.user_id == user_id)
        if statuses:
            query = query.where(CheckinRow.status.in_([s.value for s in statuses]))
        with self.db.session() as s:
            return list(s.scalars(query))

    # -- parts -------------------------------------------------------------------------------

    def _update(self, checkin_id: int, **values: Any) -> None:
        with self.db.session() as s:
            s.execute(update(CheckinRow).where(CheckinRow.id == checkin_id)
                      .values(updated_at=self.clock(), **values).execution_options(synchronize_session=False))

    def _transition(self, checkin_id: int, allowed: tuple[CheckinStatus, ...], **values: Any) -> bool:
        with self.db.session() as s:
            result = s.execute(update(CheckinRow).where(CheckinRow.id == checkin_id,
                                                        CheckinRow.status.in_([a.value for a in allowed]))
                               .values(updated_at=self.clock(), **values).execution_options(synchronize_session=False))
            return rows_changed(result) == 1
