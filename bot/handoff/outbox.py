"""The handoff outbox: record first, then deliver to every configured target, exactly once each.

One row per escalation event per delivery channel (`email`, `webhook`, `slack_channel`,
`teams_channel`, `teacher:<platform>`), each with an idempotency key. A row moves

    pending ──claim──► sending ──ok──► delivered
       ▲                  │
       └──retry/backoff───┤ (a retryable error; or the lease ran out because the process died)
                          └──permanent error / max attempts──► failed ──(`coach handoffs retry`)──► pending

A drain (`Outbox.deliver_due`, run by `OutboxWorker` in a background thread or by
`coach handoffs deliver`) claims due rows: `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL,
so several bot processes share the work, and a conditional `UPDATE ... WHERE status='pending'`
on SQLite (bot/state/leased_queue.py, the mechanism the inbound queue shares). A claim sets a
lease; a row whose process was killed mid-delivery is claimed again when its lease expires and sent with the same idempotency key (HTTP `Idempotency-Key`, e-mail
`Message-ID`), so the receiver can drop the repeat. The core defines the protocols in
bot/handoff/delivery.py; the channels that speak SMTP, HTTP, Slack and Teams live in adapters/delivery/.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.handoff.delivery import (DELIVERED, FAILED, OPENED, PENDING, SENDING, DeliveryChannel, DeliveryError,
                                  OutboxItem)
from bot.handoff.escalations import EscalationRow
from bot.outbound import outbound
from bot.retry import backoff
from bot.settings import OutboxSettings
from bot.state.database import Base, StateDB, aware, rows_changed, utcnow
from bot.state.leased_queue import LeasedQueue

log = logging.getLogger(__name__)


class OutboxRow(Base):
    """One delivery of one escalation event to one channel."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # idempotency key, sent to the receiver
    escalation_id: Mapped[int] = mapped_column(Integer, index=True)
    ticket: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(20))  # opened, updated, claimed, resolved
    seq: Mapped[int] = mapped_column(Integer, default=1)  # which detail of the escalation an update carries
    channel: Mapped[str] = mapped_column(String(40), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # e.g. Slack ts, Teams activity id
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def idempotency_key(escalation: EscalationRow, event: str, seq: int, channel: str) -> str:
    """Stable for an escalation event and channel: the listener and a recovery sweep agree on it.

    The escalation's creation time is folded in so two installations' `H-0042` never share a key
    at a receiver they both post to.
    """
    stamp = created.strftime("%Y%m%d%H%M%S") if (created := aware(escalation.created_at)) else "0"
    salt = hashlib.sha256(f"{escalation.id}|{stamp}".encode()).hexdigest()[:10]
    return f"coach-{escalation.id}-{event}-{seq}-{channel.replace(':', '-')}-{salt}"


# -- the outbox --------------------------------------------------------------------------------------

@dataclass
class DrainReport:
    """What one pass of `deliver_due` did."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def add(self, other: DrainReport) -> None:
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.failed += other.failed


class Outbox:
    """Rows to deliver, and the drain that delivers them through the channels this process has."""

    def __init__(self, db: StateDB, channels: Iterable[DeliveryChannel] = (), settings: OutboxSettings | None = None,
                 *, owner: str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.channels: dict[str, DeliveryChannel] = {c.name: c for c in channels}
        self.settings = settings or OutboxSettings()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.clock = clock
        self.postgres = db.engine.dialect.name == "postgresql"
        self.leases = LeasedQueue(db, OutboxRow, key=OutboxRow.id, status=OutboxRow.status,
                                  lease_until=OutboxRow.lease_until, attempts=OutboxRow.attempts,
                                  updated_at=OutboxRow.updated_at, waiting=PENDING, leased=SENDING,
                                  owner=OutboxRow.lease_owner)

    def add_channel(self, channel: DeliveryChannel) -> None:
        """Register a channel after start-up (an adapter's own TeacherNotifier, say)."""
        self.channels[channel.name] = channel

    # -- writing ---------------------------------------------------------------------------------

    def enqueue(self, escalation: EscalationRow, event: str, seq: int, channels: Sequence[str],
                payload: dict[str, Any]) -> list[int]:
        """Write one pending row per channel; a row whose key exists already is left alone (idempotent)."""
        if not channels:
            return []
        for _ in range(3):  # a concurrent writer of the same key loses the race cleanly, then we re-read
            try:
                with self.db.session() as s:
                    return self.add_rows(s, escalation, event, seq, [(c, payload) for c in channels])
            except IntegrityError:
                continue
        return []

    def enqueue_many(self, escalation: EscalationRow, event: str, seq: int,
                     deliveries: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """`add_rows` in a transaction of its own (idempotent, like `enqueue`)."""
        if not deliveries:
            return []
        for _ in range(3):
            try:
                with self.db.session() as s:
                    return self.add_rows(s, escalation, event, seq, deliveries)
            except IntegrityError:
                continue
        return []

    def add_rows(self, session: Session, escalation: EscalationRow, event: str, seq: int,
                 deliveries: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Add pending rows (channel, payload) in the caller's transaction, skipping keys already written."""
        keys = {idempotency_key(escalation, event, seq, c): (c, payload) for c, payload in deliveries}
        if not keys:
            return []
        existing = set(session.scalars(select(OutboxRow.key).where(OutboxRow.key.in_(list(keys)))).all())
        now = self.clock()
        rows = [OutboxRow(key=k, escalation_id=escalation.id, ticket=escalation.ticket, event=event, seq=seq,
                          channel=c, payload=payload, status=PENDING, attempts=0, next_attempt_at=now,
                          created_at=now, updated_at=now)
                for k, (c, payload) in keys.items() if k not in existing]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]

    # -- draining --------------------------------------------------------------------------------

    def deliver_due(self, limit: int | None = None) -> DrainReport:
        """Claim due rows for this process's channels one at a time, deliver each, record the outcome.

        One at a time so a lease only ever covers a delivery in progress: a crash delays no row that
        was not being sent, and a slow batch never outlives its leases.
        """
        report = DrainReport()
        for _ in range(limit or self.settings.batch_size):
            item = self._claim_one()
            if item is None:
                break
            report.claimed += 1
            outcome = self._deliver_one(item)
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    def drain(self, timeout: float = 10.0, *, until_empty: bool = False) -> DrainReport:
        """Deliver until nothing is due now (or `timeout` passes); for one-shot commands and tests.

        With `until_empty`, rows waiting out a backoff are waited for too, as long as they fall due
        before the timeout (an operator running `coach handoffs retry` wants the outcome).
        """
        total = DrainReport()
        deadline = self.clock() + timedelta(seconds=timeout)
        pause = threading.Event()
        while self.clock() < deadline:
            report = self.deliver_due()
            total.add(report)
            if report.claimed:
                continue
            due = self.next_due() if until_empty else None
            if due is None or due >= deadline:
                break
            pause.wait(max((due - self.clock()).total_seconds(), 0.0) + 0.01)
        return total

    def pending(self, escalation_id: int | None = None) -> dict[str, int]:
        """Rows not yet delivered, per status, for this process's channels."""
        rows = self.rows(escalation_id=escalation_id, status=(PENDING, SENDING, FAILED), limit=100000)
        out: dict[str, int] = {}
        for r in rows:
            if r.channel in self.channels:
                out[r.status] = out.get(r.status, 0) + 1
        return out

    def _claim_one(self) -> OutboxItem | None:
        if not self.channels:
            return None
        now = self.clock()
        # Due: pending with its backoff over, or sending with the lease run out. SKIP LOCKED on PostgreSQL;
        # on SQLite a conditional UPDATE per candidate, and a loser tries the next.
        claimed = self.leases.claim_next(
            now=now, lease_seconds=self.settings.lease_seconds, ready=[OutboxRow.next_attempt_at <= now],
            where=[OutboxRow.channel.in_(list(self.channels))], order_by=[OutboxRow.next_attempt_at, OutboxRow.id],
            owner=self.owner, skip_locked=self.postgres)
        if claimed is None:
            return None
        with self.db.session() as s:
            r = s.get_one(OutboxRow, claimed)
            first = s.scalars(select(OutboxRow).where(OutboxRow.escalation_id == r.escalation_id,
                                                      OutboxRow.channel == r.channel,
                                                      OutboxRow.event == OPENED)).first()
            return OutboxItem(
                id=r.id, key=r.key, escalation_id=r.escalation_id, ticket=r.ticket, event=r.event, seq=r.seq,
                # The one point every delivery passes: nothing invisible (bidi overrides) leaves the machine.
                channel=r.channel, payload=outbound(r.payload or {}), attempt=r.attempts, created_at=aware(r.created_at),
                first=None if first is None else {"key": first.key, "status": first.status, "receipt": first.receipt})

    def _deliver_one(self, item: OutboxItem) -> str:
        channel = self.channels.get(item.channel)
        try:
            if channel is None:
                raise DeliveryError(f"no channel {item.channel!r} in this process")
            receipt = channel.deliver(item)
        except DeliveryError as exc:
            return self._failed(item, str(exc), permanent=exc.permanent, retry_after=exc.retry_after)
        except Exception as exc:  # a bug or an unexpected network error: retry, and say what it was
            log.exception("outbox row %s (%s %s → %s) raised", item.id, item.ticket, item.event, item.channel)
            return self._failed(item, f"{type(exc).__name__}: {exc}", permanent=False, retry_after=None)
        now = self.clock()
        changed = self.leases.settle(item.id, dict(status=DELIVERED, delivered_at=now, updated_at=now, receipt=receipt,
                                                   lease_until=None, last_error=None), owner=self.owner)
        if changed != 1:
            # Our lease ran out mid-delivery and another process took the row; the receiver's dedupe covers it.
            log.warning("outbox row %s delivered after its lease expired", item.id)
        log.info("delivered %s %s to %s (attempt %d)", item.ticket, item.event, item.channel, item.attempt)
        return "delivered"

    def _failed(self, item: OutboxItem, error: str, *, permanent: bool, retry_after: float | None) -> str:
        now = self.clock()
        s_ = self.settings
        give_up = permanent or (s_.max_attempts > 0 and item.attempt >= s_.max_attempts)
        # Jitter: many rows failing together do not retry together.
        delay = backoff(item.attempt - 1, base=s_.backoff_base_seconds, cap=s_.backoff_max_seconds, jitter=0.2)
        if retry_after:
            delay = min(max(delay, retry_after), s_.backoff_max_seconds)
        # Only while we still hold the row: a lease taken over belongs to its new holder.
        if give_up:
            self.leases.settle(item.id, dict(last_error=error[:2000], updated_at=now, lease_until=None, status=FAILED),
                               owner=self.owner)
        else:
            self.leases.release(item.id, now=now, owner=self.owner, last_error=error[:2000],
                                next_attempt_at=now + timedelta(seconds=delay))
        if give_up:
            log.error("outbox row %s (%s %s → %s) failed for good after %d attempt(s): %s",
                      item.id, item.ticket, item.event, item.channel, item.attempt, error)
            return "failed"
        log.warning("outbox row %s (%s %s → %s) attempt %d failed, retry in %.1fs: %s",
                    item.id, item.ticket, item.event, item.channel, item.attempt, delay, error)
        return "retrying"

    # -- operators -------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the next row for this process's channels falls due (for the worker's sleep)."""
        if not self.channels:
            return None
        with self.db.session() as s:
            pending = s.scalar(select(func.min(OutboxRow.next_attempt_at)).where(
                OutboxRow.status == PENDING, OutboxRow.channel.in_(list(self.channels))))
            leased = s.scalar(select(func.min(OutboxRow.lease_until)).where(
                OutboxRow.status == SENDING, OutboxRow.channel.in_(list(self.channels))))
        times = [a for t in (pending, leased) if (a := aware(t)) is not None]
        return min(times) if times else None

    def rows(self, *, escalation_id: int | None = None, status: str | Sequence[str] | None = None,
             limit: int = 500) -> list[OutboxRow]:
        """Rows for the command line and tests, oldest first."""
        query = select(OutboxRow).order_by(OutboxRow.id).limit(limit)
        if escalation_id is not None:
            query = query.where(OutboxRow.escalation_id == escalation_id)
        if status is not None:
            query = query.where(OutboxRow.status.in_([status] if isinstance(status, str) else list(status)))
        with self.db.session() as s:
            return list(s.scalars(query).all())

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        with self.db.session() as s:
            return {status: n for status, n in s.execute(
                select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all()}

    def retry(self, *, escalation_id: int | None = None, include_pending: bool = True) -> int:
        """Failed rows (and, by default, pending rows waiting out a backoff) become due now."""
        now = self.clock()
        statuses = [FAILED, PENDING] if include_pending else [FAILED]
        query = update(OutboxRow).where(OutboxRow.status.in_(statuses))
        if escalation_id is not None:
            query = query.where(OutboxRow.escalation_id == escalation_id)
        with self.db.session() as s:
            result = s.execute(query.values(status=PENDING, next_attempt_at=now, updated_at=now)
                               .execution_options(synchronize_session=False))
        return rows_changed(result)
