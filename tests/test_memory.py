"""Conversation memory, feedback and event dedupe on the real SQLite database."""

from __future__ import annotations

from bot.state.memory import ConversationMemory
from bot.state.database import StateDB
from bot.state.inbound import ProcessedEvents


def record(memory: ConversationMemory, key: str, text: str) -> str:
    return memory.record(memory_key=key, platform="console", user_id="u1", text=text, route="coach", reason="",
                         reply=f"reply to {text}", sources=["a"], confidence=0.5, composer="template")


def test_history_is_per_conversation_and_in_order(tmp_path):
    memory = ConversationMemory(StateDB(f"sqlite:///{tmp_path}/state.db"))
    for i in range(8):
        record(memory, "slack:C1:111.1", f"q{i}")
    record(memory, "slack:C1:222.2", "other thread")
    history = memory.history("slack:C1:111.1", limit=6)
    assert [t.text for t in history] == [f"q{i}" for i in range(2, 8)]
    assert [t.text for t in memory.history("slack:C1:222.2")] == ["other thread"]


def test_history_survives_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    record(ConversationMemory(StateDB(url)), "k", "before restart")
    assert [t.text for t in ConversationMemory(StateDB(url)).history("k")] == ["before restart"]


def test_feedback_counts_once_per_user(tmp_path):
    memory = ConversationMemory(StateDB(f"sqlite:///{tmp_path}/state.db"))
    turn = record(memory, "k", "q")
    assert memory.add_feedback(turn, "helped", "u1") is True
    assert memory.add_feedback(turn, "helped", "u1") is False
    assert memory.add_feedback(turn, "helped", "u2") is True


def test_event_claimed_once(tmp_path):
    db = StateDB(f"sqlite:///{tmp_path}/state.db")
    assert ProcessedEvents(db).claim("slack:Ev1") is True
    assert ProcessedEvents(db).claim("slack:Ev1") is False
    assert ProcessedEvents(StateDB(db.url)).claim("slack:Ev1") is False
