"""Rows claimed with a lease: one mechanism for the inbound queue and the handoff outbox.

A row waits (`waiting` status) until a process claims it: the claim moves it to the `leased`
status with `lease_until` set, counts an attempt and, where the table has one, names the owner.
The process holding the lease settles the row (done, delivered, back to waiting with a backoff, failed)
with an UPDATE that only changes a row still leased (to that owner), so a process whose lease ran out
and was taken over cannot overwrite the new holder's outcome. A lease that runs out (the process died)
makes the row claimable again by any process.

Exactly one claimer wins a row, on SQLite and PostgreSQL, under any number of processes:

* `claim` (a row named by its key) and the SQLite path of `claim_next` are a conditional
  `UPDATE ... WHERE <key> AND (waiting AND ready OR leased AND lease_until < now)`; the database
  serialises the UPDATEs and only the one that still sees the row claimable changes it (rowcount 1).
* the PostgreSQL path of `claim_next` selects the first claimable row `FOR UPDATE SKIP LOCKED` and
  leases it in the same transaction: a row another process is claiming is skipped, not waited for.

The mechanism knows columns and statuses only; what a table does with a claimed row (answer an event,
deliver an escalation) stays with its owner (bot/state/inbound.py, bot/handoff/outbox.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.state.database import Base, StateDB, rows_changed


@dataclass(frozen=True)
class LeasedQueue:
    """A table's leased-claim state machine, parametrised by its mapped class, columns and statuses."""

    db: StateDB
    model: type[Base]
    key: InstrumentedAttribute[Any]           # the row's identity (primary key or unique)
    status: InstrumentedAttribute[Any]
    lease_until: InstrumentedAttribute[Any]
    attempts: InstrumentedAttribute[Any]
    updated_at: InstrumentedAttribute[Any]
    waiting: str                               # the status a claim takes a row from
    leased: str                                # the status a claimed row holds while its lease runs
    owner: InstrumentedAttribute[Any] | None = None  # the lease holder, for tables that record it

    # -- conditions ------------------------------------------------------------------------------

    def expired(self, now: datetime) -> ColumnElement[bool]:
        """Leased, and the lease ran out: the holder died or overran; any process may take the row over."""
        return and_(self.status == self.leased, self.lease_until < now)

    def claimable(self, now: datetime, ready: Sequence[ColumnElement[bool]] = ()) -> ColumnElement[bool]:
        """Waiting (and `ready`, e.g. its backoff over) or leased with the lease run out."""
        return or_(and_(self.status == self.waiting, *ready), self.expired(now))

    def held(self, key: Any, owner: str | None = None) -> ColumnElement[bool]:
        """This row, still leased (to `owner`, when given): a settle changes nothing once the lease was taken over."""
        clauses = [self.key == key, self.status == self.leased]
        if owner is not None:
            if self.owner is None:
                raise ValueError(f"{self.model.__name__} records no lease owner")
            clauses.append(self.owner == owner)
        return and_(*clauses)

    def lease(self, now: datetime, lease_seconds: float, owner: str | None = None) -> dict[str, Any]:
        """The values a claim writes: leased until now + lease_seconds, one attempt more, the owner."""
        values: dict[str, Any] = {self.status.key: self.leased,
                                  self.lease_until.key: now + timedelta(seconds=lease_seconds),
                                  self.attempts.key: self.attempts + 1,
                                  self.updated_at.key: now}
        if owner is not None:
            if self.owner is None:
                raise ValueError(f"{self.model.__name__} records no lease owner")
            values[self.owner.key] = owner
        return values

    # -- claiming --------------------------------------------------------------------------------

    def claim(self, session: Session, key: Any, *, now: datetime, lease_seconds: float,
              ready: Sequence[ColumnElement[bool]] = (), owner: str | None = None) -> bool:
        """Lease the row `key` in the caller's transaction; False when it is not claimable (done, or held)."""
        result = session.execute(
            update(self.model).where(self.key == key, self.claimable(now, ready))
            .values(**self.lease(now, lease_seconds, owner)).execution_options(synchronize_session=False))
        return rows_changed(result) == 1

    def claim_next(self, *, now: datetime, lease_seconds: float, ready: Sequence[ColumnElement[bool]] = (),
                   where: Sequence[ColumnElement[bool]] = (), order_by: Sequence[Any] = (),
                   owner: str | None = None, skip_locked: bool = False, candidates: int = 10) -> Any | None:
        """Lease the first claimable row (in `order_by`, narrowed by `where`); its key, or None when none is.

        `skip_locked` (PostgreSQL): row locks, and rows another process is claiming are skipped rather
        than waited for. Otherwise (SQLite, one writer at a time) up to `candidates` keys are read and
        each is claimed with a conditional UPDATE; a claimer that loses a row tries the next.
        """
        query = select(self.key).where(self.claimable(now, ready), *where).order_by(*order_by)
        values = self.lease(now, lease_seconds, owner)
        if skip_locked:
            with self.db.session() as s:
                key = s.scalars(query.limit(1).with_for_update(skip_locked=True)).first()
                if key is not None:
                    s.execute(update(self.model).where(self.key == key).values(**values)
                              .execution_options(synchronize_session=False))
            return key
        with self.db.session() as s:
            keys = list(s.scalars(query.limit(candidates)).all())
        for key in keys:
            with self.db.session() as s:
                if self.claim(s, key, now=now, lease_seconds=lease_seconds, ready=ready, owner=owner):
                    return key
        return None

    def due(self, *, now: datetime, ready: Sequence[ColumnElement[bool]] = (),
            where: Sequence[ColumnElement[bool]] = (), order_by: Sequence[Any] = (), limit: int = 20) -> list[Any]:
        """Keys of claimable rows, for a sweeper that then claims each (a read: claiming may still lose)."""
        query = select(self.key).where(self.claimable(now, ready), *where).order_by(*order_by).limit(limit)
        with self.db.session() as s:
            return list(s.scalars(query))

    # -- settling --------------------------------------------------------------------------------

    def settle(self, key: Any, values: dict[str, Any], *, owner: str | None = None) -> int:
        """Write an outcome to a row still held (to `owner`, when given); rows changed (0: the lease was lost)."""
        with self.db.session() as s:
            result = s.execute(update(self.model).where(self.held(key, owner)).values(**values)
                               .execution_options(synchronize_session=False))
        return rows_changed(result)

    def release(self, key: Any, *, now: datetime, owner: str | None = None, **values: Any) -> int:
        """Give a held row back: waiting again, no lease, `values` (a backoff's next attempt, say) besides."""
        return self.settle(key, {self.status.key: self.waiting, self.lease_until.key: None,
                                 self.updated_at.key: now, **values}, owner=owner)

    def mark(self, key: Any, values: dict[str, Any]) -> int:
        """Write to the row whatever its state (a final status the caller knows to be right); rows changed."""
        with self.db.session() as s:
            result = s.execute(update(self.model).where(self.key == key).values(**values)
                               .execution_options(synchronize_session=False))
        return rows_changed(result)
