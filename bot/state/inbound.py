"""The inbound queue: every event a platform sends is written down before it is acked.

Slack does not retry an event it got 200 for, so an event acked and then lost in a crashed
process is lost for good. Here the ack path records the event first (`record`): only with a row
in the state database does the adapter answer 200; when the database cannot be written it
answers 503 and Slack tries again later. Then one process at a time answers it (`claim`, a
conditional update with a lease, bot/state/leased_queue.py), writes down the answer it posted
(`set_answer`) and marks it done; a process killed in between leaves a row whose lease runs out,
and any process's sweeper (`due`) picks it up. A row with an answer recorded is only marked done, never answered again.

Teams messages go the same way (adapters/teams/worker.py): the Bot Framework retries a request
that is slow to answer, so the turn records the message, answers 202 and a worker replies.
Keys carry the platform ("slack:", "teams:"), and each platform's sweeper takes only its own.

The tables sit beside the other state tables; synchronous calls,
run off the event loop by the adapters.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from bot.state.database import Base, StateDB, StateError, utcnow
from bot.state.leased_queue import LeasedQueue

class ProcessedEventRow(Base):
    """Platform event ids already handled, so a retried delivery is answered once."""

    __tablename__ = "processed_events"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InboundEventRow(Base):
    """A platform event acked to the platform: kept until answered, so no process crash loses it.

    Written before the ack (bot.state.inbound), claimed with a lease by the process answering it, and
    picked up by any process's sweeper when that process died before marking it done.
    """

    __tablename__ = "inbound_events"
    __table_args__ = (Index("ix_inbound_events_due", "status", "lease_until"),)

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | processing | done
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    answer_ts: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the posted answer, once sent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProcessedEvents:
    """Platform event ids already handled, so a retried delivery is answered once."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def claim(self, key: str) -> bool:
        """Record an event id; False when it was seen before (by any process sharing the database)."""
        try:
            with self.db.session() as s:
                s.add(ProcessedEventRow(key=key))
            return True
        except IntegrityError:
            return False


PENDING, PROCESSING, DONE = "pending", "processing", "done"
LEASE_SECONDS = 30.0   # a claim holds this long (over the 10 s retry budget plus posting); then any process may take over
GRACE_SECONDS = 5.0    # a pending row younger than this belongs to the process that just wrote it


class InboundQueue:
    """Rows in `inbound_events`, keyed by the platform's event id ("slack:Ev123")."""

    def __init__(self, db: StateDB, *, lease_seconds: float = LEASE_SECONDS,
                 grace_seconds: float = GRACE_SECONDS) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.leases = LeasedQueue(db, InboundEventRow, key=InboundEventRow.key, status=InboundEventRow.status,
                                  lease_until=InboundEventRow.lease_until, attempts=InboundEventRow.attempts,
                                  updated_at=InboundEventRow.updated_at, waiting=PENDING, leased=PROCESSING)

    def record(self, key: str, payload: dict[str, Any]) -> bool:
        """Write the event down; False when it is already there (a retry). StateError when the database fails."""
        now = utcnow()
        try:
            with self.db.session() as s:
                s.add(InboundEventRow(key=key, payload=payload, status=PENDING, attempts=0,
                                      created_at=now, updated_at=now))
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:  # anything else the database says: not durable, not acked
            raise StateError(f"cannot record inbound event {key}: {exc}") from exc

    def claim(self, key: str, *, now: datetime | None = None) -> InboundEventRow | None:
        """Take the event for answering (a lease); None when it is done or another process holds it."""
        now = now or utcnow()
        with self.db.session() as s:
            # Pending at any age: the process that recorded the event claims it at once, no grace.
            if not self.leases.claim(s, key, now=now, lease_seconds=self.lease_seconds):
                return None
            return s.get(InboundEventRow, key)

    def set_answer(self, key: str, answer_ts: str) -> None:
        """Write down the message that answered the event, right after posting it."""
        with self.db.session() as s:
            s.execute(update(InboundEventRow).where(InboundEventRow.key == key)
                      .values(answer_ts=answer_ts, updated_at=utcnow()).execution_options(synchronize_session=False))

    def done(self, key: str) -> None:
        """Mark the event answered, whoever holds it now: its answer is out (or recorded), so no one answers again."""
        self.leases.mark(key, {"status": DONE, "lease_until": None, "updated_at": utcnow()})

    def release(self, key: str) -> None:
        """Give the event back (pending) for the sweeper to try again."""
        self.leases.release(key, now=utcnow())

    def due(self, *, limit: int = 20, now: datetime | None = None, prefix: str = "") -> list[str]:
        """Keys a sweeper should try: pending past the grace period, or processing with the lease run out.

        `prefix` ("slack:", "teams:") keeps each platform's sweeper to the rows it can answer.
        """
        now = now or utcnow()
        where = [InboundEventRow.key.startswith(prefix, autoescape=True)] if prefix else []
        return self.leases.due(now=now, ready=[InboundEventRow.updated_at < now - timedelta(seconds=self.grace_seconds)],
                               where=where, order_by=[InboundEventRow.created_at], limit=limit)

    def get(self, key: str) -> InboundEventRow | None:
        with self.db.session() as s:
            return s.get(InboundEventRow, key)
