"""What the report reads from the state database: turns, feedback, escalations, the ids to scrub.

Read through the core's own tables (`TurnRow`, `FeedbackRow`, `EscalationRow`) and, for one
escalation, its repository (`Escalations.get_by_ticket`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from bot.checkins.report import CHECKIN_COMPOSER
from bot.handoff.escalations import EscalationRow, Escalations
from bot.models import Route
from bot.state.database import StateDB, aware, table_of
from bot.state.memory import FeedbackRow, TurnRow

REPLAY_PLATFORM = "replay"  # turns recorded by `coach replay`


@dataclass(frozen=True)
class TurnRecord:
    """One teacher message as the report reads it. `asker` is for counting only, never shown."""

    id: str
    memory_key: str
    platform: str
    asker: str
    text: str
    route: str
    sources: tuple[str, ...]
    confidence: float
    created_at: datetime
    context: str = ""  # the coaching question before a follow-up, as retrieval read it


def as_utc(value: datetime) -> datetime:
    """A stored or given time in UTC: a naive one (SQLite) was written in UTC, an aware one is converted."""
    return aware(value).astimezone(timezone.utc)


def load_turns(db: StateDB, *, since: datetime | None = None, until: datetime | None = None,
               include_replay: bool = True) -> list[TurnRecord]:
    """Turns in the period, oldest first, each follow-up carrying the question before it."""
    # A check-in the coach sent is recorded as a turn of its conversation; it is not a teacher's question.
    query = select(TurnRow).where(TurnRow.composer != CHECKIN_COMPOSER).order_by(TurnRow.created_at, TurnRow.id)
    if since is not None:
        query = query.where(TurnRow.created_at >= since)
    if until is not None:
        query = query.where(TurnRow.created_at < until)
    if not include_replay:
        query = query.where(TurnRow.platform != REPLAY_PLATFORM)
    with db.session() as s:
        rows = s.scalars(query).all()
    out: list[TurnRecord] = []
    previous: dict[str, TurnRow] = {}
    for r in rows:
        prev = previous.get(r.memory_key)
        # Same rule as Coach._retrieve: a turn after a coaching turn is read with it.
        context = prev.text if prev is not None and prev.route == Route.COACH and r.route == Route.COACH else ""
        previous[r.memory_key] = r
        out.append(TurnRecord(
            id=r.id, memory_key=r.memory_key, platform=r.platform, asker=f"{r.platform}\x1f{r.user_id}",
            text=r.text or "", route=r.route, sources=tuple(r.sources or ()),
            confidence=float(r.confidence or 0.0), created_at=as_utc(r.created_at), context=context,
        ))
    return out


# Every column of an escalation that can hold a person's id or name.
_PEOPLE = (EscalationRow.user_id, EscalationRow.claimed_by, EscalationRow.resolved_by,
           EscalationRow.claimed_by_name, EscalationRow.resolved_by_name)


def load_user_ids(db: StateDB) -> set[str]:
    """Every user id (and handoff name) the state database knows, so examples can be scrubbed of them."""
    ids: set[str] = set()
    with db.session() as s:
        ids.update(s.scalars(select(TurnRow.user_id).distinct()).all())
        ids.update(s.scalars(select(FeedbackRow.user_id).distinct()).all())
        for column in _PEOPLE:
            ids.update(str(v) for v in s.scalars(select(column).distinct()).all() if v)
    return {i for i in ids if i}


def load_feedback(db: StateDB, turn_ids: Iterable[str]) -> dict[str, Counter[str]]:
    """Button clicks per turn: {'helped': n, 'not_quite': n, ...}."""
    wanted = set(turn_ids)
    out: dict[str, Counter[str]] = defaultdict(Counter)
    if not wanted:
        return out
    with db.session() as s:
        for turn_id, action in s.execute(select(FeedbackRow.turn_id, FeedbackRow.action)).all():
            if turn_id in wanted:
                out[turn_id][action] += 1
    return out


def load_escalations(db: StateDB, *, since: datetime | None = None, until: datetime | None = None,
                     include_replay: bool = True) -> list[EscalationRow]:
    """Escalations opened in the period, oldest first."""
    query = select(EscalationRow).order_by(EscalationRow.id)
    if since is not None:
        query = query.where(EscalationRow.created_at >= since)
    if until is not None:
        query = query.where(EscalationRow.created_at < until)
    if not include_replay:
        query = query.where(EscalationRow.platform != REPLAY_PLATFORM)
    with db.session() as s:
        return list(s.scalars(query).all())


def escalation_fields(row: EscalationRow) -> dict[str, Any]:
    """An escalation as plain data, one item per column (what a draft entry is written from)."""
    return {column.name: getattr(row, column.name) for column in table_of(EscalationRow).columns}


def load_escalation(db: StateDB, ref: str | int) -> dict[str, Any] | None:
    """One escalation by id (`7`) or ticket (`I-0007`), as the handoff desk finds it; None when there is none."""
    row = Escalations(db).get_by_ticket(str(ref))
    return escalation_fields(row) if row is not None else None
