"""State on SQLite and on a real PostgreSQL server: memory, feedback, dedupe, escalations, outbox.

Every test runs twice, once per backend (the `state_url` fixture), each time on a fresh, empty
database, and the concurrency tests use separate engines (separate connection pools, as
separate bot processes have) or separate OS processes: what must hold is "answered once,
opened once, delivered once" whoever gets there first.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bot.handoff.escalations import EscalationRow, Escalations
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB, schema_revision
from bot.state.inbound import ProcessedEvents

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state database: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_server").create_database()


def record(memory: ConversationMemory, key: str, text_: str) -> str:
    return memory.record(memory_key=key, platform="slack", user_id="U1", text=text_, route="coach", reason="",
                         reply=f"reply to {text_}", sources=["a"], confidence=0.5, composer="template")


def test_memory_is_per_conversation_ordered_and_survives_a_restart(state_url: str) -> None:
    memory = ConversationMemory(StateDB(state_url))
    for i in range(8):
        record(memory, "slack:C1:111.1", f"q{i}")
    record(memory, "slack:C1:222.2", "other thread")
    assert [t.text for t in memory.history("slack:C1:111.1", limit=6)] == [f"q{i}" for i in range(2, 8)]
    reopened = ConversationMemory(StateDB(state_url))  # another process, or this one after a restart
    assert [t.text for t in reopened.history("slack:C1:222.2")] == ["other thread"]
    assert reopened.history("slack:C1:111.1", limit=1)[0].sources == ["a"]


def test_feedback_counts_once_per_user(state_url: str) -> None:
    memory = ConversationMemory(StateDB(state_url))
    turn = record(memory, "k", "q")
    assert memory.add_feedback(turn, "helped", "U1") is True
    assert memory.add_feedback(turn, "helped", "U1") is False
    assert ConversationMemory(StateDB(state_url)).add_feedback(turn, "helped", "U1") is False
    assert memory.add_feedback(turn, "helped", "U2") is True
    assert memory.add_feedback(turn, "not_quite", "U1") is True


def test_event_claimed_once_by_racing_threads_with_their_own_pools(state_url: str) -> None:
    dbs = [StateDB(state_url) for _ in range(4)]  # four "processes", each with its own connection pool
    keys = [f"slack:Ev{i:04d}" for i in range(40)]
    start = threading.Barrier(16)

    def worker(n: int) -> list[str]:
        db = dbs[n % len(dbs)]
        mine = random.Random(n).sample(keys, len(keys))
        start.wait()
        return [k for k in mine if ProcessedEvents(db).claim(k)]

    with ThreadPoolExecutor(16) as pool:
        won = [k for claimed in pool.map(worker, range(16)) for k in claimed]
    assert Counter(won) == Counter(keys)  # every event once: none lost, none twice


CLAIMER = r"""
import json, random, sys
from bot.state.database import StateDB
from bot.state.inbound import ProcessedEvents
url, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = StateDB(url)  # every process upgrades the empty database at once: the lock must serialise them
keys = [f"slack:Ev{i:04d}" for i in range(n)]
random.Random(seed).shuffle(keys)
print(json.dumps([k for k in keys if ProcessedEvents(db).claim(k)]))
"""


def test_processes_starting_together_migrate_once_and_claim_each_event_once(state_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, state_url, str(seed), "30"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(3)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    claimed = Counter(k for keys in outputs for k in keys)
    assert claimed == Counter(f"slack:Ev{i:04d}" for i in range(30))
    db = StateDB(state_url)
    current, head = schema_revision(db.engine)
    assert current == head is not None
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def _open(escalations: Escalations, memory_key: str, n: int):
    return escalations.open_or_add(target="integrator", reason="asked for a person", category="person",
                                   urgent=n == 3, memory_key=memory_key, platform="slack", user_id=f"U{n}",
                                   summary="wants help planning", detail={"text": f"message {n}"})


def test_one_open_escalation_per_conversation_under_concurrency(state_url: str) -> None:
    escalations = [Escalations(StateDB(state_url)) for _ in range(4)]
    start = threading.Barrier(8)

    def worker(n: int):
        start.wait()
        return _open(escalations[n % 4], "slack:C1:555.5", n)

    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(worker, range(8)))
    assert sum(o.created for o in opened) == 1, [o.ticket for o in opened if o.created]
    assert len({o.id for o in opened}) == 1
    with escalations[0].db.session() as s:
        rows = s.scalars(select(EscalationRow).where(EscalationRow.memory_key == "slack:C1:555.5")).all()
        assert len(rows) == 1
        assert sorted(d["text"] for d in rows[0].details) == sorted(f"message {n}" for n in range(8))
        assert rows[0].urgent is True  # one urgent message makes the escalation urgent
    other = _open(escalations[1], "slack:C2:777.7", 0)
    assert other.created and other.id != opened[0].id


def test_a_resolved_escalation_lets_the_next_request_open_a_new_one(state_url: str) -> None:
    escalations = Escalations(StateDB(state_url))
    first = _open(escalations, "teams:chat-1", 0)
    assert escalations.resolve(first.id, "U0INTEGRAT") is not None
    again = _open(escalations, "teams:chat-1", 1)
    assert again.created and again.id != first.id


class RecordingChannel:
    """A delivery channel that remembers every idempotency key it was handed."""

    name = "webhook"
    targets = frozenset({"helpdesk", "integrator"})
    events = frozenset({"opened", "updated", "claimed", "resolved"})

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def deliver(self, item: Any) -> dict[str, Any]:
        time.sleep(0.002)  # a receiver takes a moment: drains overlap
        with self._lock:
            self.keys.append(item.key)
        return {"ok": True}

    def probe(self) -> str:
        return "recording"


def test_outbox_drained_by_several_processes_delivers_each_row_once(state_url: str) -> None:
    outbox_mod = pytest.importorskip("bot.handoff.outbox", reason="bot/outbox.py (the handoff outbox) is not in this tree")
    db = StateDB(state_url)
    escalations = Escalations(db)
    channel = RecordingChannel()
    writer = outbox_mod.Outbox(db, [channel])
    for n in range(30):
        opened = _open(escalations, f"slack:C{n}:1.1", n)
        writer.enqueue(escalations.get(opened.id), "opened", 1, [channel.name], {"context": {"n": n}})
    expected = [r.key for r in writer.rows()]
    assert len(expected) == 30
    drains = [outbox_mod.Outbox(StateDB(state_url), [channel], owner=f"bot-{i}") for i in range(4)]
    start = threading.Barrier(len(drains))

    def drain(outbox: Any) -> int:
        start.wait()
        done = 0
        while True:
            report = outbox.deliver_due(limit=3)
            done += report.delivered
            if report.claimed == 0:
                return done

    with ThreadPoolExecutor(len(drains)) as pool:
        delivered = list(pool.map(drain, drains))
    assert Counter(channel.keys) == Counter(expected)  # each row delivered exactly once
    assert sum(delivered) == 30
    with db.session() as s:
        statuses = dict(s.execute(select(outbox_mod.OutboxRow.status, func.count())
                                  .group_by(outbox_mod.OutboxRow.status)).all())
    assert statuses == {"delivered": 30}
