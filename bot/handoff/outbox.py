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
on SQLite. A claim sets a lease; a row whose process was killed mid-delivery is claimed again
when its lease expires and sent with the same idempotency key (HTTP `Idempotency-Key`, e-mail
`Message-ID`), so the receiver can drop the repeat. The core defines the protocols here; the
channels that speak SMTP, HTTP, Slack and Teams live in adapters/delivery/.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.compose import replies
from bot.handoff.escalations import EscalationRow, Escalations
from bot.state.database import aware
from bot.handoff.context import build_context, concern_notice
from bot.outbound import outbound
from bot.platforms import Capability, platforms
from bot.settings import OutboxSettings, Settings
from bot.state.database import Base, StateDB, rows_changed, utcnow
from bot.state.memory import ConversationMemory
from bot.triage.categories import Category

if TYPE_CHECKING:  # the coach imports nothing from here; the listener only reads its event types
    from bot.coach import EscalationEvent, EscalationStatusEvent

log = logging.getLogger(__name__)


class DeliveryStatus(StrEnum):
    """Where one delivery row is in its life (the diagram above)."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


class HandoffEvent(StrEnum):
    """What happened to an escalation that a delivery tells someone about."""

    OPENED = "opened"
    UPDATED = "updated"  # a later turn added a detail
    CLAIMED = "claimed"
    RESOLVED = "resolved"


# Short names, as the rest of this module and `coach handoffs` read them.
PENDING, SENDING, DELIVERED, FAILED = tuple(DeliveryStatus)
STATUSES = tuple(DeliveryStatus)
OPENED, UPDATED, CLAIMED, RESOLVED = tuple(HandoffEvent)

TEACHER_PREFIX = "teacher:"
# Delivery targets beyond the escalation targets (helpdesk, integrator): the safeguarding lead and deputy.
SAFEGUARDING_LEAD = "safeguarding"
SAFEGUARDING_DEPUTY = "safeguarding_deputy"
SAFEGUARDING_CATEGORY = Category.SAFEGUARDING


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


# -- what channels see -------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutboxItem:
    """A claimed row, as a channel receives it."""

    id: int
    key: str
    escalation_id: int
    ticket: str
    event: str
    seq: int
    channel: str
    payload: dict[str, Any]
    attempt: int
    created_at: datetime
    # The same channel's `opened` delivery of this escalation (key, status, receipt), for threading updates.
    first: dict[str, Any] | None = None


class DeliveryError(Exception):
    """A delivery that did not happen; `permanent` stops retries until an operator looks."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class DeliveryChannel(Protocol):
    """A place handoffs go: the integrators' Slack channel, a Teams channel, e-mail, a webhook."""

    name: str
    targets: frozenset[str]  # escalation targets it takes: "helpdesk", "integrator"
    events: frozenset[str]  # the `HandoffEvent`s it takes

    def deliver(self, item: OutboxItem) -> dict[str, Any] | None:
        """Send one item; return a receipt to keep (or None); raise DeliveryError on failure."""
        ...

    def probe(self) -> str:
        """Check the target is reachable without sending a handoff; return a short description, or raise."""
        ...


@dataclass(frozen=True)
class TeacherNotice:
    """A message for the teacher who started an escalation (claimed, resolved)."""

    platform: str
    conversation_id: str
    thread_id: str | None
    user_id: str
    text: str
    ticket: str
    kind: str
    platform_ref: dict[str, Any] = field(default_factory=dict)
    memory_key: str = ""  # the conversation's key; Teams stores its conversation reference under it

    def as_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "conversation_id": self.conversation_id, "thread_id": self.thread_id,
                "user_id": self.user_id, "text": self.text, "ticket": self.ticket, "kind": self.kind,
                "platform_ref": self.platform_ref, "memory_key": self.memory_key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherNotice:
        return cls(platform=data["platform"], conversation_id=data["conversation_id"], thread_id=data.get("thread_id"),
                   user_id=data.get("user_id", ""), text=data["text"], ticket=data.get("ticket", ""),
                   kind=data.get("kind", ""), platform_ref=dict(data.get("platform_ref") or {}),
                   memory_key=data.get("memory_key", ""))


class TeacherNotifier(Protocol):
    """Tells a teacher something on their own platform, in the conversation the escalation came from."""

    platform: str

    def notify_teacher(self, notice: TeacherNotice) -> dict[str, Any] | None:
        """Post the notice; return a receipt or None; raise DeliveryError on failure."""
        ...


class TeacherChannel:
    """A TeacherNotifier seen as a delivery channel, so teacher notices go through the outbox too."""

    events: frozenset[str] = frozenset({CLAIMED, RESOLVED})
    targets = frozenset({"helpdesk", "integrator"})

    def __init__(self, notifier: TeacherNotifier) -> None:
        self.notifier = notifier
        self.name = TEACHER_PREFIX + notifier.platform

    def deliver(self, item: OutboxItem) -> dict[str, Any] | None:
        return self.notifier.notify_teacher(TeacherNotice.from_dict(item.payload["notice"]))

    def probe(self) -> str:
        probe = getattr(self.notifier, "probe", None)
        return probe() if probe else "no probe"


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

    def _due(self, now: datetime) -> Any:
        return or_(and_(OutboxRow.status == PENDING, OutboxRow.next_attempt_at <= now),
                   and_(OutboxRow.status == SENDING, OutboxRow.lease_until < now))

    def _claim_one(self) -> OutboxItem | None:
        if not self.channels:
            return None
        now = self.clock()
        values = dict(status=SENDING, lease_until=now + timedelta(seconds=self.settings.lease_seconds),
                      lease_owner=self.owner, attempts=OutboxRow.attempts + 1, updated_at=now)
        candidates = (select(OutboxRow.id).where(self._due(now), OutboxRow.channel.in_(list(self.channels)))
                      .order_by(OutboxRow.next_attempt_at, OutboxRow.id))
        claimed: int | None = None
        if self.postgres:
            # A row lock, and rows another process holds are skipped rather than waited for.
            with self.db.session() as s:
                claimed = s.scalars(candidates.limit(1).with_for_update(skip_locked=True)).first()
                if claimed is not None:
                    s.execute(update(OutboxRow).where(OutboxRow.id == claimed).values(**values)
                              .execution_options(synchronize_session=False))
        else:
            # SQLite has one writer at a time: the claim is a conditional UPDATE, and only the process
            # whose UPDATE still sees the row as due gets rowcount 1; a loser tries the next candidate.
            with self.db.session() as s:
                ids = list(s.scalars(candidates.limit(10)).all())
            for row_id in ids:
                with self.db.session() as s:
                    result = s.execute(update(OutboxRow).where(OutboxRow.id == row_id, self._due(now))
                                       .values(**values).execution_options(synchronize_session=False))
                if rows_changed(result) == 1:
                    claimed = row_id
                    break
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
        with self.db.session() as s:
            result = s.execute(update(OutboxRow).where(OutboxRow.id == item.id, OutboxRow.status == SENDING,
                                                      OutboxRow.lease_owner == self.owner)
                               .values(status=DELIVERED, delivered_at=now, updated_at=now, receipt=receipt,
                                       lease_until=None, last_error=None)
                               .execution_options(synchronize_session=False))
        if rows_changed(result) != 1:
            # Our lease ran out mid-delivery and another process took the row; the receiver's dedupe covers it.
            log.warning("outbox row %s delivered after its lease expired", item.id)
        log.info("delivered %s %s to %s (attempt %d)", item.ticket, item.event, item.channel, item.attempt)
        return "delivered"

    def _failed(self, item: OutboxItem, error: str, *, permanent: bool, retry_after: float | None) -> str:
        now = self.clock()
        s_ = self.settings
        give_up = permanent or (s_.max_attempts > 0 and item.attempt >= s_.max_attempts)
        delay = min(s_.backoff_max_seconds, s_.backoff_base_seconds * 2 ** max(item.attempt - 1, 0))
        delay *= random.uniform(0.8, 1.0)  # jitter: many rows failing together do not retry together
        if retry_after:
            delay = min(max(delay, retry_after), s_.backoff_max_seconds)
        values: dict[str, Any] = dict(last_error=error[:2000], updated_at=now, lease_until=None)
        if give_up:
            values["status"] = FAILED
        else:
            values.update(status=PENDING, next_attempt_at=now + timedelta(seconds=delay))
        with self.db.session() as s:
            s.execute(update(OutboxRow).where(OutboxRow.id == item.id, OutboxRow.lease_owner == self.owner,
                                              OutboxRow.status == SENDING)
                      .values(**values).execution_options(synchronize_session=False))
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


# -- the listener the coach calls --------------------------------------------------------------------

class OutboxListener:
    """The coach's EscalationListener: writes outbox rows (the record is in the database first), then wakes the worker."""

    def __init__(self, outbox: Outbox, escalations: Escalations, memory: ConversationMemory, settings: Settings,
                 *, wake: Callable[[], None] | None = None) -> None:
        self.outbox = outbox
        self.escalations = escalations
        self.memory = memory
        self.settings = settings
        self.wake = wake or (lambda: None)

    def route(self, target: str, event: str) -> list[str]:
        """Channels that take this escalation target and event; helpdesk tickets with nowhere to go reach the integrators."""
        chans = [c for c in self.outbox.channels.values() if not c.name.startswith(TEACHER_PREFIX) and event in c.events]
        names = [c.name for c in chans if target in c.targets]
        if not names and target == "helpdesk":
            names = [c.name for c in chans if "integrator" in c.targets]
        return names

    def safeguarding_channels(self) -> list[str]:
        """The channels that reach the safeguarding lead (empty: nobody can be told automatically)."""
        return self.route(SAFEGUARDING_LEAD, OPENED)

    def reaches(self, target: str) -> list[str]:
        """Channels an escalation with this target (or `safeguarding`) is delivered to when opened."""
        return self.safeguarding_channels() if target == SAFEGUARDING_LEAD else self.route(target, OPENED)

    def channels_for(self, row: EscalationRow, event: str) -> list[str]:
        """Every channel (teacher notices aside) that takes this event of this escalation.

        A safeguarding concern goes to the lead's channels; the shared ones hear only that it
        exists (never its updates).
        """
        shared = self.route(row.target, event)
        if row.category != SAFEGUARDING_CATEGORY:
            return shared
        return self.route(SAFEGUARDING_LEAD, event) + ([] if event == UPDATED else shared)

    def write(self, session: Session, row: EscalationRow, event: str, seq: int) -> None:
        """The Escalations writer: delivery rows for this change, in the transaction that made it."""
        self.outbox.add_rows(session, row, event, seq, self.deliveries(row, event, seq))

    def deliveries(self, row: EscalationRow, event: str, seq: int,
                   history: Sequence[Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(channel, payload) for every channel that takes this event, and the teacher's notice for a claim or resolve.

        A safeguarding concern's full, unmasked account goes to the safeguarding lead's channels
        alone (they need it to act); every shared channel (integrators, helpdesk, webhook) gets a
        one-line notice that the concern exists and where it went.
        """
        notice = self._teacher_notice(row, event)
        shared = self.route(row.target, event)
        lead = self.route(SAFEGUARDING_LEAD, event) if row.category == SAFEGUARDING_CATEGORY else []
        if not shared and not lead and notice is None:
            return []
        if history is None:
            history = self.memory.history(row.memory_key)
        detail = None
        if event == UPDATED and 0 < seq <= len(row.details or []):
            detail = (row.details[seq - 1] or {}).get("text")
        out: list[tuple[str, dict[str, Any]]] = []
        if row.category != SAFEGUARDING_CATEGORY:
            context = build_context(row, history, self.settings, event=event, new_detail=detail)
            out += [(c, {"context": context.as_dict()}) for c in shared]
        else:
            if lead:
                unmasked = self.settings.model_copy(update={"handoff": self.settings.handoff.model_copy(
                    update={"mask_transcripts": False})})
                full = build_context(row, history, unmasked, event=event, new_detail=detail)
                out += [(c, {"context": full.as_dict()}) for c in lead]
            if event != UPDATED:
                brief = concern_notice(row, self.settings, event=event, passed_on=bool(self.safeguarding_channels()))
                out += [(c, {"context": brief.as_dict()}) for c in shared]
        if notice is not None:
            out.append(notice)
        return out

    def _tells_teacher(self, row: EscalationRow) -> bool:
        """A chat platform's bot process (or this process's notifier) can tell the teacher later."""
        return (TEACHER_PREFIX + row.platform in self.outbox.channels
                or platforms.can(row.platform, Capability.TELL_LATER))

    def _teacher_notice(self, row: EscalationRow, event: str) -> tuple[str, dict[str, Any]] | None:
        if event not in (CLAIMED, RESOLVED):
            return None
        channel = TEACHER_PREFIX + row.platform
        if not self._tells_teacher(row):
            log.info("%s %s: no notifier for %s teachers; the teacher is not told", row.ticket, event, row.platform)
            return None
        if event == CLAIMED:
            text = replies.handoff_claimed(row.ticket, row.target, row.category, row.claimed_by_name, self.settings)
        else:
            text = replies.handoff_resolved(row.ticket, row.target, row.category, row.resolved_by_name, self.settings)
        reply_to = row.reply_to or {}
        notice = TeacherNotice(
            platform=row.platform, conversation_id=str(reply_to.get("conversation_id") or ""),
            thread_id=reply_to.get("thread_id"), user_id=row.user_id, text=text, ticket=row.ticket, kind=event,
            platform_ref=dict(reply_to.get("platform_ref") or {}), memory_key=row.memory_key)
        return channel, {"notice": notice.as_dict()}

    def escalated(self, event: EscalationEvent) -> None:
        """A turn opened an escalation, or added to it: its rows were written with it; deliver now."""
        row = self.escalations.get(event.opened.id)
        if row is None:
            raise LookupError(f"escalation {event.opened.id} is not in the state database")
        kind = OPENED if event.opened.created else UPDATED
        seq = 1 if event.opened.created else len(row.details or [])
        # Idempotent: with this listener registered as the escalations' writer the rows exist already.
        self.outbox.enqueue_many(row, kind, seq, self.deliveries(row, kind, seq, history=event.history))
        self.wake()

    def status_changed(self, event: EscalationStatusEvent) -> None:
        """Someone claimed or resolved an escalation: the channels that track it, and the teacher, are told."""
        row = event.transition.row
        kind = CLAIMED if event.transition.action == "claim" else RESOLVED
        self.outbox.enqueue_many(row, kind, 1, self.deliveries(row, kind, 1, history=event.history))
        self.wake()

    def escalate_unclaimed(self, *, now: datetime | None = None) -> int:
        """Safeguarding concerns nobody claimed within `deputy_after_minutes` go to the deputy too, once.

        The ladder student-safety systems use: the lead first, then a second person, so one absence
        cannot leave a concern unread. Returns the rows written (idempotent: a key is written once).
        """
        sg = self.settings.safeguarding
        deputy = self.route(SAFEGUARDING_DEPUTY, OPENED)
        if not deputy or sg.deputy_after_minutes <= 0:
            return 0
        now = now or utcnow()
        due = now - timedelta(minutes=sg.deputy_after_minutes)
        with self.escalations.db.session() as s:
            rows = list(s.scalars(select(EscalationRow).where(
                EscalationRow.category == SAFEGUARDING_CATEGORY, EscalationRow.status == "open",
                EscalationRow.created_at <= due, EscalationRow.created_at >= now - timedelta(days=7))
                .order_by(EscalationRow.id).limit(100)).all())
            sent = {r for r in s.scalars(select(OutboxRow.escalation_id).where(
                OutboxRow.escalation_id.in_([r.id for r in rows]), OutboxRow.channel.in_(deputy)))} if rows else set()
        written = 0
        unmasked = self.settings.model_copy(update={"handoff": self.settings.handoff.model_copy(
            update={"mask_transcripts": False})})
        for row in rows:
            if row.id in sent:
                continue
            context = build_context(row, self.memory.history(row.memory_key), unmasked, event=OPENED)
            note = (f"Nobody has claimed this concern {int(sg.deputy_after_minutes)} minutes after it was raised, "
                    "so it comes to you as the deputy safeguarding lead.")
            context = replace(context, status_line=note)
            written += len(self.outbox.enqueue(row, OPENED, 1, deputy, {"context": context.as_dict()}))
            log.warning("%s not claimed after %s minutes: sent to the deputy", row.ticket, sg.deputy_after_minutes)
        if written:
            self.wake()
        return written

    def recover(self, *, days: int | None = None, page: int = 200) -> int:
        """Write the delivery rows any escalation is missing; returns how many.

        Newest first, every escalation changed in the last `days` (settings.outbox.recover_days), teacher
        notices included. With the rows written in the escalation's own transaction this finds nothing,
        unless a process of an older version (or one without this listener) recorded the escalation.
        """
        since = utcnow() - timedelta(days=days or self.outbox.settings.recover_days)
        written = 0
        before_id: int | None = None
        while True:
            query = (select(EscalationRow).where(EscalationRow.updated_at >= since)
                     .order_by(EscalationRow.id.desc()).limit(page))
            if before_id is not None:
                query = query.where(EscalationRow.id < before_id)
            with self.escalations.db.session() as s:
                rows = list(s.scalars(query).all())
                have = {(r.escalation_id, r.event, r.seq, r.channel) for r in s.scalars(select(OutboxRow).where(
                    OutboxRow.escalation_id.in_([r.id for r in rows]))).all()} if rows else set()
            if not rows:
                break
            before_id = rows[-1].id
            for row in rows:
                written += self._recover_one(row, have)
        if written:
            log.warning("outbox recovery wrote %d missing delivery row(s)", written)
            self.wake()
        return written

    def _recover_one(self, row: EscalationRow, have: set[tuple[int, str, int, str]]) -> int:
        wanted = [(OPENED, 1)] + [(UPDATED, n) for n in range(2, len(row.details or []) + 1)]
        if row.claimed_at is not None:
            wanted.append((CLAIMED, 1))
        if row.status == "resolved":  # the escalation's own status
            wanted.append((RESOLVED, 1))
        written = 0
        history = None
        for kind, seq in wanted:
            channels = self.channels_for(row, kind)
            if kind in (CLAIMED, RESOLVED) and self._tells_teacher(row):
                channels = [*channels, TEACHER_PREFIX + row.platform]
            if all((row.id, kind, seq, c) in have for c in channels):
                continue
            if history is None:
                history = self.memory.history(row.memory_key)
            missing = [(c, p) for c, p in self.deliveries(row, kind, seq, history=history)
                       if (row.id, kind, seq, c) not in have]
            written += len(self.outbox.enqueue_many(row, kind, seq, missing))
        return written


# -- the background worker ---------------------------------------------------------------------------

class OutboxWorker:
    """Drains the outbox in a daemon thread: at once when woken, else when the next row falls due."""

    def __init__(self, outbox: Outbox, *, poll_seconds: float | None = None,
                 on_start: Callable[[], Any] | None = None, recover_seconds: float | None = None,
                 on_poll: Callable[[], Any] | None = None) -> None:
        self.outbox = outbox
        self.poll_seconds = poll_seconds or outbox.settings.poll_seconds
        # Recovery (`on_start`) runs at start and then every `recover_seconds` while the worker runs.
        self.on_start = on_start
        self.recover_seconds = recover_seconds or outbox.settings.recover_seconds
        self._recovered_at = float("-inf")
        self.on_poll = on_poll  # periodic work beside delivery (the safeguarding deputy ladder)
        self._polled = float("-inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush = False
        self._thread: threading.Thread | None = None
        self.report = DrainReport()

    def start(self) -> OutboxWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="coach-outbox", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """A row was written: deliver now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0, *, flush: bool = False) -> None:
        """Stop after the row in hand (with `flush`, after everything due now); waits at most `timeout`.

        Undelivered rows stay in the outbox for the next start; a row left mid-delivery is retried
        when its lease runs out.
        """
        self._flush = flush
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _recover(self) -> None:
        if self.on_start is None or time.monotonic() - self._recovered_at < self.recover_seconds:
            return
        self._recovered_at = time.monotonic()
        try:
            self.on_start()
        except Exception:  # the database may be down for a moment; the next round tries again
            log.exception("outbox recovery failed; continuing with delivery")

    def _run(self) -> None:
        while not (self._stop.is_set() and not self._flush):
            self._wake.clear()
            if not self._stop.is_set():
                self._recover()
            if self.on_poll is not None and time.monotonic() - self._polled >= self.poll_seconds:
                self._polled = time.monotonic()
                try:
                    self.on_poll()
                except Exception:  # the database may be down for a moment; the next round tries again
                    log.exception("outbox periodic check failed; continuing with delivery")
            try:
                report = self.outbox.deliver_due()
                self.report.add(report)
                if report.claimed:
                    continue  # there may be more due right now
                if self._stop.is_set():
                    break  # flushed: nothing more is due
                wait = min(self.poll_seconds, max(self._recovered_at + self.recover_seconds - time.monotonic(), 0.05))
                due = self.outbox.next_due()
                if due is not None:
                    wait = min(wait, max((due - utcnow()).total_seconds(), 0.05))
            except Exception:  # the database may be down for a moment; try again at the next poll
                log.exception("outbox drain failed")
                if self._stop.is_set():
                    break
                wait = self.poll_seconds
            self._wake.wait(wait)
