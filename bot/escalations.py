"""Escalation records: one open escalation per conversation and target, written before delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.state import Base, StateDB, utcnow

PREFIX = {"helpdesk": "H", "integrator": "I"}


class EscalationRow(Base):
    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(40), default="")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
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

    @property
    def ticket(self) -> str:
        return f"{PREFIX.get(self.target, 'E')}-{self.id:04d}"


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

    def open_or_add(self, *, target: str, reason: str, category: str, urgent: bool, memory_key: str,
                    platform: str, user_id: str, summary: str, detail: dict[str, Any]) -> Opened:
        """Record first, deliver later: the row exists before anyone is notified."""
        now = utcnow()
        with self.db.session() as s:
            row = s.scalars(
                select(EscalationRow).where(
                    EscalationRow.memory_key == memory_key, EscalationRow.target == target,
                    EscalationRow.status.in_(("open", "claimed")),
                ).with_for_update()
            ).first()
            created = row is None
            if row is None:
                row = EscalationRow(target=target, reason=reason, category=category, urgent=urgent,
                                    memory_key=memory_key, platform=platform, user_id=user_id,
                                    summary=summary, details=[detail], created_at=now, updated_at=now)
                s.add(row)
            else:
                row.details = [*row.details, detail]
                row.urgent = row.urgent or urgent
                row.updated_at = now
            s.flush()
            return Opened(row.id, row.ticket, row.target, row.reason, row.urgent, created)

    def get(self, escalation_id: int) -> EscalationRow | None:
        with self.db.session() as s:
            return s.get(EscalationRow, escalation_id)

    def open_for(self, memory_key: str, target: str) -> EscalationRow | None:
        with self.db.session() as s:
            return s.scalars(select(EscalationRow).where(
                EscalationRow.memory_key == memory_key, EscalationRow.target == target,
                EscalationRow.status.in_(("open", "claimed")))).first()
