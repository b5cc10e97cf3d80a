"""The leased-row mechanism itself (bot/state/leased_queue.py), on SQLite and on PostgreSQL.

Real tables (the inbound queue's, which records no owner, and the outbox's, which does), real
databases, and claimers on their own engines and threads: one winner per row, a lease that ran out
is taken over and its old holder can no longer settle the row, and a finished row stays finished.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.handoff.delivery import DELIVERED, PENDING, SENDING
from bot.handoff.outbox import OutboxRow
from bot.state.database import StateDB, utcnow
from bot.state.inbound import DONE, PROCESSING, InboundEventRow, InboundQueue
from bot.state.leased_queue import LeasedQueue

CLAIMERS = 4
LEASE = 30.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def db(url: str) -> Iterator[StateDB]:
    db = StateDB(url)
    yield db
    db.engine.dispose()


def inbound_leases(db: StateDB) -> LeasedQueue:
    return InboundQueue(db).leases


def outbox_leases(db: StateDB) -> LeasedQueue:
    return LeasedQueue(db, OutboxRow, key=OutboxRow.id, status=OutboxRow.status, lease_until=OutboxRow.lease_until,
                       attempts=OutboxRow.attempts, updated_at=OutboxRow.updated_at, waiting=PENDING, leased=SENDING,
                       owner=OutboxRow.lease_owner)


def add_outbox_rows(db: StateDB, n: int, now: datetime) -> list[int]:
    rows = [OutboxRow(key=f"k{i}", escalation_id=1, ticket="H-0001", event="opened", seq=1, channel="rec",
                      payload={}, status=PENDING, attempts=0, next_attempt_at=now, created_at=now, updated_at=now)
            for i in range(n)]
    with db.session() as s:
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def ready(now: datetime) -> list:
    return [OutboxRow.next_attempt_at <= now]


def test_two_claimers_of_one_key_never_both_get_it(db):
    queue = InboundQueue(db)
    for i in range(5):
        assert queue.record(f"slack:E{i}", {"n": i})
    engines = [StateDB(db.url) for _ in range(CLAIMERS)]
    winners: dict[str, list[int]] = {f"slack:E{i}": [] for i in range(5)}
    barrier = threading.Barrier(CLAIMERS)
    now = utcnow()

    def claim(who: int) -> None:
        leases = inbound_leases(engines[who])
        barrier.wait()
        for key in winners:
            with engines[who].session() as s:
                if leases.claim(s, key, now=now, lease_seconds=LEASE):
                    winners[key].append(who)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.engine.dispose()
    assert all(len(w) == 1 for w in winners.values()), winners
    assert all(queue.get(k).status == PROCESSING and queue.get(k).attempts == 1 for k in winners)


def test_claim_next_hands_each_row_to_one_claimer(db):
    now = utcnow()
    ids = add_outbox_rows(db, 12, now)
    engines = [StateDB(db.url) for _ in range(CLAIMERS)]
    got: list[list[int]] = [[] for _ in range(CLAIMERS)]
    barrier = threading.Barrier(CLAIMERS)

    def drain(who: int) -> None:
        leases = outbox_leases(engines[who])
        barrier.wait()
        for _ in range(2 * len(ids)):  # bounded: a mechanism that hands rows out twice fails, not hangs
            key = leases.claim_next(now=now, lease_seconds=LEASE, ready=ready(now), order_by=[OutboxRow.id],
                                    owner=f"p{who}", skip_locked=engines[who].engine.dialect.name == "postgresql")
            if key is None:
                break
            got[who].append(key)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.engine.dispose()
    claimed = [k for keys in got for k in keys]
    assert sorted(claimed) == sorted(ids)  # every row once: none twice, none left
    with db.session() as s:
        owners = {r.id: r.lease_owner for r in s.query(OutboxRow)}
    assert all(owners[k] == f"p{who}" for who, keys in enumerate(got) for k in keys)


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_settle(db):
    leases = outbox_leases(db)
    now = utcnow()
    (row_id,) = add_outbox_rows(db, 1, now)
    assert leases.claim_next(now=now, lease_seconds=LEASE, ready=ready(now), owner="first") == row_id
    early = now + timedelta(seconds=LEASE - 1)
    assert leases.claim_next(now=early, lease_seconds=LEASE, ready=ready(early), owner="second") is None
    assert leases.due(now=early, ready=ready(early)) == []
    late = now + timedelta(seconds=LEASE + 1)
    assert leases.due(now=late, ready=ready(late)) == [row_id]
    assert leases.claim_next(now=late, lease_seconds=LEASE, ready=ready(late), owner="second") == row_id
    # The first holder comes back after its lease ran out: its outcome changes nothing.
    assert leases.settle(row_id, {"status": DELIVERED, "lease_until": None}, owner="first") == 0
    assert leases.release(row_id, now=late, owner="first") == 0
    with db.session() as s:
        row = s.get_one(OutboxRow, row_id)
        assert (row.status, row.lease_owner, row.attempts) == (SENDING, "second", 2)
    assert leases.settle(row_id, {"status": DELIVERED, "lease_until": None}, owner="second") == 1


def test_an_expired_inbound_lease_is_taken_over_by_key(db):
    queue = InboundQueue(db, lease_seconds=LEASE)
    assert queue.record("teams:A1", {})
    now = utcnow()
    assert queue.claim("teams:A1", now=now) is not None
    assert queue.claim("teams:A1", now=now + timedelta(seconds=LEASE - 1)) is None
    row = queue.claim("teams:A1", now=now + timedelta(seconds=LEASE + 1))
    assert row is not None and row.attempts == 2


def test_a_completed_row_is_never_claimed_again(db):
    queue = InboundQueue(db)
    assert queue.record("slack:E1", {})
    assert queue.claim("slack:E1") is not None
    queue.done("slack:E1")
    later = utcnow() + timedelta(days=1)
    assert queue.claim("slack:E1", now=later) is None
    assert queue.due(now=later) == []
    queue.release("slack:E1")  # a release after done gives nothing back
    assert queue.get("slack:E1").status == DONE
    assert queue.claim("slack:E1", now=later) is None

    leases = outbox_leases(db)
    now = utcnow()
    (row_id,) = add_outbox_rows(db, 1, now)
    assert leases.claim_next(now=now, lease_seconds=LEASE, ready=ready(now), owner="p") == row_id
    assert leases.settle(row_id, {"status": DELIVERED, "lease_until": None}, owner="p") == 1
    assert leases.claim_next(now=later, lease_seconds=LEASE, ready=ready(later), owner="q") is None
    with db.session() as s:
        assert leases.claim(s, row_id, now=later, lease_seconds=LEASE, ready=ready(later), owner="q") is False


def test_a_release_with_backoff_waits_out_its_time(db):
    leases = outbox_leases(db)
    now = utcnow()
    (row_id,) = add_outbox_rows(db, 1, now)
    assert leases.claim_next(now=now, lease_seconds=LEASE, ready=ready(now), owner="p") == row_id
    assert leases.release(row_id, now=now, owner="p", next_attempt_at=now + timedelta(seconds=10)) == 1
    soon = now + timedelta(seconds=5)
    assert leases.claim_next(now=soon, lease_seconds=LEASE, ready=ready(soon), owner="p") is None
    after = now + timedelta(seconds=11)
    assert leases.claim_next(now=after, lease_seconds=LEASE, ready=ready(after), owner="p") == row_id


def test_owner_columns_are_required_to_name_an_owner(db):
    with pytest.raises(ValueError):
        inbound_leases(db).held("slack:E1", owner="p")
    assert inbound_leases(db).model is InboundEventRow
