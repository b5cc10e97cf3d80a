"""Check-ins on a real PostgreSQL shared by two sending processes: every check-in sent exactly once.

The server is the session's own cluster on loopback (tests/services.py via conftest's `postgres_server`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bot.checkins.calendar import SchoolCalendar
from bot.checkins.sending import CheckinDispatcher, CheckinMessage
from bot.checkins.service import CheckinService
from bot.checkins.store import Checkins, NewOffer
from bot.settings import CheckinSettings
from bot.state.database import StateDB
from bot.state.memory import ConversationMemory

pytestmark = pytest.mark.server
NOW = datetime(2026, 12, 10, 15, 45, tzinfo=timezone.utc)  # a Thursday afternoon in London


@pytest.fixture
def pg(postgres_server) -> Iterator[StateDB]:
    db = StateDB(postgres_server.create_database())
    yield db
    db.engine.dispose()


class SlowSender:
    """Takes a moment per post, so the two processes really overlap."""

    platform = "slack"

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.lock = threading.Lock()

    def send_checkin(self, message: CheckinMessage) -> dict[str, Any]:
        threading.Event().wait(0.01)
        with self.lock:
            self.sent.append(message.checkin_id)
        return {}


def process(db: StateDB, sender: SlowSender, owner: str) -> CheckinDispatcher:
    settings = CheckinSettings()
    service = CheckinService(Checkins(db, clock=lambda: NOW), SchoolCalendar.from_settings(settings), settings,
                             ConversationMemory(db), clock=lambda: NOW)
    return CheckinDispatcher(service, [sender], owner=owner)


def test_two_processes_on_postgres_send_each_checkin_once(pg: StateDB) -> None:
    store = Checkins(pg, clock=lambda: NOW)
    ids = []
    for i in range(30):
        checkin_id = store.offer(NewOffer(memory_key=f"slack:D{i}", platform="slack", user_id=f"U{i}",
                                          conversation_id=f"D{i}", thread_id=None, platform_ref={},
                                          plan="try exit tickets with 9B", when_label="thursday", topic=None,
                                          sources=[]))
        assert store.offer(NewOffer(memory_key=f"slack:D{i}", platform="slack", user_id=f"U{i}",
                                    conversation_id=f"D{i}", thread_id=None, platform_ref={}, plan="again",
                                    when_label=None, topic=None, sources=[])) is None  # one per conversation
        store.schedule(checkin_id, "after_day", NOW - timedelta(minutes=5), "Europe/London")
        ids.append(checkin_id)
    a, b = SlowSender(), SlowSender()
    first, second = process(pg, a, "one"), process(pg, b, "two")
    threads = [threading.Thread(target=lambda d=d: [d.deliver_due() for _ in range(3)]) for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a.sent + b.sent) == sorted(ids)
    assert a.sent and b.sent  # both processes took a share
    assert {r.status for r in store.rows()} == {"sent"}
