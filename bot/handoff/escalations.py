"""Escalation records: one open escalation per conversation and target, written before delivery."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.state.database import Base, StateDB, rows_changed, utcnow

log = logging.getLogger(__name__)

PREFIX = {"helpdesk": "H", "integrator": "I"}


class EscalationStatus(StrEnum):
    """Where an escalation is: open, claimed by a person, then resolved (stored as these values)."""

    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


STATUSES = tuple(EscalationStatus)
ACTIVE = (EscalationStatus.OPEN, EscalationStatus.CLAIMED)
# Conversations with these never reach an outside service (bot.access names the same two).
SENSITIVE_CATEGORIES = ("safeguarding", "data_incident")
_TICKET = re.compile(r"^\s*(?:([A-Za-z])-?)?0*(\d+)\s*$")


class EscalationRow(Base):
    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(40), default="")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=EscalationStatus.OPEN, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    memory_key: Mapped[str] = mapped_column(String(400), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Added for handoff delivery; nullable so older databases gain them in place.
    claimed_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reply_to: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # What the integrator answered when resolving, masked before it is stored (it feeds shared
    # knowledge drafts); None when they left no note. Revision hn01.
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def ticket(self) -> str:
        return f"{PREFIX.get(self.target, 'E')}-{self.id:04d}"

    @property
    def urgency(self) -> str:
        """`urgent` (a class waiting, a safeguarding concern) or `normal`."""
        return "urgent" if self.urgent else "normal"

    @property
    def claimer(self) -> str | None:
        """Who claimed it, as a person reads it."""
        return self.claimed_by_name or self.claimed_by

    @property
    def resolver(self) -> str | None:
        return self.resolved_by_name or self.resolved_by


# Called inside the transaction that changed an escalation: (session, row, event, seq).
Writer = Callable[[Session, "EscalationRow", str, int], None]


@dataclass(frozen=True)
class Transition:
    """A claim or resolve that changed an escalation; `row` is the record after the change."""

    action: str  # "claim" or "resolve"
    previous: str
    row: EscalationRow


@dataclass(frozen=True)
class Opened:
    """The escalation a turn opened or added to."""

    id: int
    ticket: str
    target: str
    reason: str
    urgent: bool
    created: bool


class Escalations:
    """Opens escalations, or adds to the one already open for the conversation and target."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self._writers: list[Writer] = []

    def add_writer(self, writer: Writer) -> None:
        """Run `writer(session, row, event, seq)` inside every transaction that opens, adds to, claims or
        resolves an escalation (the outbox writes its delivery rows there): both are committed, or neither."""
        self._writers.append(writer)

    def _written(self, session: Session, row: EscalationRow, event: str, seq: int) -> None:
        for writer in self._writers:
            writer(session, row, event, seq)

    def open_or_add(self, *, target: str, reason: str, category: str, urgent: bool, memory_key: str,
                    platform: str, user_id: str, summary: str, detail: dict[str, Any],
                    reply_to: dict[str, Any] | None = None) -> Opened:
        """Record first, deliver later: the row exists before anyone is notified."""
        now = utcnow()
        with self.db.session() as s:
            # Two messages of one conversation at once must not open two escalations: serialise the
            # read-then-write (an advisory lock on PostgreSQL, the write lock on SQLite).
            self.db.lock(s, f"escalation:{memory_key}:{target}")
            row = s.scalars(
                select(EscalationRow).where(
                    EscalationRow.memory_key == memory_key, EscalationRow.target == target,
                    EscalationRow.status.in_(ACTIVE),
                ).with_for_update()
            ).first()
            created = row is None
            message_id = detail.get("message_id")
            if row is not None and message_id and any(d.get("message_id") == message_id for d in row.details):
                # The same platform message again (a retry after an error): nothing is added or sent twice.
                first = (row.details[0] or {}).get("message_id") == message_id
                return Opened(row.id, row.ticket, row.target, row.reason, row.urgent, first)
            if row is None:
                row = EscalationRow(target=target, reason=reason, category=category, urgent=urgent,
                                    memory_key=memory_key, platform=platform, user_id=user_id,
                                    summary=summary, details=[detail], created_at=now, updated_at=now,
                                    reply_to=reply_to)
                s.add(row)
            else:
                row.details = [*row.details, detail]
                row.urgent = row.urgent or urgent
                row.updated_at = now
            s.flush()
            self._written(s, row, "opened" if created else "updated", 1 if created else len(row.details))
            return Opened(row.id, row.ticket, row.target, row.reason, row.urgent, created)

    def get(self, escalation_id: int) -> EscalationRow | None:
        with self.db.session() as s:
            return s.get(EscalationRow, escalation_id)

    def sensitive(self, memory_key: str) -> bool:
        """True when the conversation has raised a safeguarding concern or a data incident (any status).

        Such a conversation stays on this machine: no model, no remote embeddings, until the
        record itself is purged under the retention policy.
        """
        with self.db.session() as s:
            return s.scalar(select(EscalationRow.id).where(
                EscalationRow.memory_key == memory_key,
                EscalationRow.category.in_(SENSITIVE_CATEGORIES)).limit(1)) is not None

    def open_for(self, memory_key: str, target: str) -> EscalationRow | None:
        with self.db.session() as s:
            return s.scalars(select(EscalationRow).where(
                EscalationRow.memory_key == memory_key, EscalationRow.target == target,
                EscalationRow.status.in_(ACTIVE))).first()

    # -- handoff desk: what integrators and the helpdesk do with a record -------------

    def get_by_ticket(self, ticket: str) -> EscalationRow | None:
        """`H-0042`, `h42`, `I-0007` or a bare id `42`; a letter that does not match the target finds nothing."""
        m = _TICKET.match(ticket or "")
        if not m:
            return None
        row = self.get(int(m.group(2)))
        if row is None or (m.group(1) and PREFIX.get(row.target, "E") != m.group(1).upper()):
            return None
        return row

    def list(self, *, status: str | Sequence[str] | None = ACTIVE, target: str | None = None,
             limit: int = 50) -> list[EscalationRow]:
        """Newest first; `status=None` lists every status."""
        query = select(EscalationRow).order_by(EscalationRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(EscalationRow.status.in_([status] if isinstance(status, str) else list(status)))
        if target is not None:
            query = query.where(EscalationRow.target == target)
        with self.db.session() as s:
            return list(s.scalars(query).all())

    def add_detail(self, escalation_id: int, detail: dict[str, Any]) -> EscalationRow | None:
        """Append something learned later (a room number, a screenshot's words) to an active escalation."""
        with self.db.session() as s:
            self.db.lock(s, f"escalation-id:{escalation_id}")  # SQLite: take the write lock before reading
            row = s.scalars(select(EscalationRow).where(EscalationRow.id == escalation_id).with_for_update()).first()
            if row is None or row.status not in ACTIVE:
                return None
            row.details = [*row.details, detail]
            row.updated_at = utcnow()
            s.flush()
            self._written(s, row, "updated", len(row.details))
            return row

    def claim(self, escalation_id: int, user_id: str, user_name: str | None = None) -> Transition | None:
        """open → claimed; None when it is already claimed or resolved (a second click changes nothing)."""
        now = utcnow()
        return self._transition(
            escalation_id, "claim", (EscalationStatus.OPEN,),
            dict(status=EscalationStatus.CLAIMED, claimed_by=user_id, claimed_by_name=user_name, claimed_at=now, updated_at=now))

    def resolve(self, escalation_id: int, user_id: str, user_name: str | None = None, *,
                note: str | None = None) -> Transition | None:
        """open or claimed → resolved, with the resolver's note (already masked); None when it was resolved already."""
        now = utcnow()
        return self._transition(
            escalation_id, "resolve", ACTIVE,
            dict(status=EscalationStatus.RESOLVED, resolved_by=user_id, resolved_by_name=user_name, resolved_at=now,
                 updated_at=now, resolution_note=note or None))

    def _transition(self, escalation_id: int, action: str, allowed: tuple[str, ...],
                    values: dict[str, Any]) -> Transition | None:
        # A conditional UPDATE is the lock: two integrators clicking at once, one wins, on SQLite and PostgreSQL.
        with self.db.session() as s:
            before = s.get(EscalationRow, escalation_id)
            if before is None or before.status not in allowed:
                return None
            previous = before.status
            result = s.execute(update(EscalationRow)
                               .where(EscalationRow.id == escalation_id, EscalationRow.status.in_(allowed))
                               .values(**values).execution_options(synchronize_session=False))
            if rows_changed(result) != 1:
                return None
            s.flush()
            s.refresh(before)
            self._written(s, before, "claimed" if action == "claim" else "resolved", 1)
            return Transition(action, previous, before)

