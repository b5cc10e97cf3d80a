"""Coaching cycles in `coach report`: offered, accepted, completed, outcomes by topic, repeat needs.

Counts only. A topic's outcomes are shown when at least `min_group_size` teachers had a check-in on
it (the report's rule for every group); teachers who came back with the same need three times
are counted, never named.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from bot.checkins.store import CheckinRow, CheckinStatus, Outcome
from bot.state.database import StateDB
from bot.state.memory import TurnRow

CHECKIN_COMPOSER = "checkin"  # turns the check-ins themselves are recorded as; not teachers' questions
REPEAT_NEED = 3


@dataclass
class CycleTopic:
    """Check-in outcomes after one knowledge entry."""

    entry_id: str
    title: str
    teachers: int
    completed: int
    outcomes: dict[str, int]


@dataclass
class CycleStats:
    """Aggregate coaching-cycle figures for a period."""

    offered: int = 0
    accepted: int = 0
    declined: int = 0
    cancelled: int = 0
    sent: int = 0
    completed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    topics: list[CycleTopic] = field(default_factory=list)
    hidden_topics: int = 0
    repeat_teachers: int = 0  # came back with the same need three times: a person should step in


def cycle_stats(db: StateDB, *, since: datetime | None, until: datetime | None, include_replay: bool,
                min_group_size: int, title: Callable[[str], str | None]) -> CycleStats:
    """The period's check-ins (by when they were offered) and repeat needs (from coaching turns)."""
    query = select(CheckinRow)
    turns = select(TurnRow.platform, TurnRow.user_id, TurnRow.memory_key, TurnRow.sources).where(
        TurnRow.route == "coach", TurnRow.composer != CHECKIN_COMPOSER)
    if since is not None:
        query, turns = query.where(CheckinRow.created_at >= since), turns.where(TurnRow.created_at >= since)
    if until is not None:
        query, turns = query.where(CheckinRow.created_at < until), turns.where(TurnRow.created_at < until)
    if not include_replay:
        query, turns = query.where(CheckinRow.platform != "replay"), turns.where(TurnRow.platform != "replay")
    with db.session() as s:
        rows = list(s.scalars(query))
        turn_rows = list(s.execute(turns))
    stats = CycleStats(offered=len(rows))
    status = Counter(r.status for r in rows)
    stats.accepted = sum(1 for r in rows if r.choice is not None)
    stats.declined = status[CheckinStatus.DECLINED.value]
    stats.cancelled = status[CheckinStatus.CANCELLED.value]
    stats.sent = sum(1 for r in rows if r.sent_at is not None)
    stats.completed = sum(1 for r in rows if r.outcome is not None)
    stats.outcomes = {o.value: sum(1 for r in rows if r.outcome == o.value) for o in Outcome}

    by_topic: dict[str, list[CheckinRow]] = defaultdict(list)
    for r in rows:
        if r.topic and r.outcome:
            by_topic[r.topic].append(r)
    for entry_id, members in by_topic.items():
        teachers = len({(r.platform, r.user_id) for r in members})
        if teachers < min_group_size:
            stats.hidden_topics += 1
            continue
        stats.topics.append(CycleTopic(entry_id, title(entry_id) or entry_id, teachers, len(members),
                                       dict(Counter(r.outcome for r in members if r.outcome))))
    stats.topics.sort(key=lambda t: (-t.completed, t.title))

    # The same need: coaching that drew first on the same entry, in three separate conversations.
    needs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for platform, user_id, memory_key, sources in turn_rows:
        if sources:
            needs[(platform, user_id, sources[0])].add(memory_key)
    stats.repeat_teachers = len({(p, u) for (p, u, _), keys in needs.items() if len(keys) >= REPEAT_NEED})
    return stats
