"""The same escalation and outbox code on a real PostgreSQL: SKIP LOCKED claims, one winner per claim.

The server is the session's own cluster on loopback (tests/services.py via conftest's
`postgres_server`); each test gets a fresh database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from bot.handoff.escalations import Escalations
from bot.handoff.outbox import Outbox, OutboxRow
from bot.settings import OutboxSettings
from bot.state.database import StateDB
from test_handoff_records import Recorder, open_helpdesk

pytestmark = pytest.mark.server


@pytest.fixture
def pg(postgres_server) -> Iterator[StateDB]:
    """A fresh database per test, so tests never see each other's rows."""
    db = StateDB(postgres_server.create_database())
    yield db
    db.engine.dispose()


def test_a_locked_row_is_skipped_not_waited_for(pg):
    esc = Escalations(pg)
    rows = [esc.get(open_helpdesk(esc, key=f"k{i}").id) for i in range(2)]
    channel = Recorder()
    outbox = Outbox(pg, [channel], OutboxSettings())
    assert outbox.postgres
    for row in rows:
        outbox.enqueue(row, "opened", 1, ["rec"], {"context": {}})
    first_id = min(r.id for r in outbox.rows())
    with pg.engine.connect() as other:  # another process is in the middle of claiming the first row
        other.execute(text("SET lock_timeout = '5s'"))
        other.execute(select(OutboxRow.id).where(OutboxRow.id == first_id).with_for_update())
        done = threading.Event()
        worker = threading.Thread(target=lambda: (outbox.deliver_due(limit=1), done.set()))
        worker.start()
        assert done.wait(5), "deliver_due blocked on a locked row instead of skipping it"
        assert [i.escalation_id for i in channel.delivered] == [rows[1].id]
        other.rollback()
    worker.join()
    assert outbox.deliver_due().delivered == 1
    assert sorted(i.escalation_id for i in channel.delivered) == sorted(r.id for r in rows)


def test_concurrent_drains_and_claims_on_postgres(pg):
    esc = Escalations(pg)
    rows = [esc.get(open_helpdesk(esc, key=f"k{i}").id) for i in range(30)]
    channel = Recorder()
    writer = Outbox(pg, [channel], OutboxSettings())
    for row in rows:
        writer.enqueue(row, "opened", 1, ["rec"], {"context": {}})
    assert writer.enqueue(rows[0], "opened", 1, ["rec"], {"context": {}}) == []
    drains = [Outbox(StateDB(pg.url), [channel], OutboxSettings(batch_size=2)) for _ in range(4)]
    threads = [threading.Thread(target=d.drain, kwargs={"timeout": 30}) for d in drains]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i.escalation_id for i in channel.delivered) == sorted(r.id for r in rows)
    assert {r.status for r in writer.rows()} == {"delivered"}

    target = rows[0].id
    results = []
    barrier = threading.Barrier(5)

    def claim(i: int) -> None:
        barrier.wait()
        results.append(Escalations(pg).claim(target, f"U{i}"))

    claimers = [threading.Thread(target=claim, args=(i,)) for i in range(5)]
    for t in claimers:
        t.start()
    for t in claimers:
        t.join()
    assert len([r for r in results if r is not None]) == 1
    assert esc.get_by_ticket(rows[0].ticket).status == "claimed"
