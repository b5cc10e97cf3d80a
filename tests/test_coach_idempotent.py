"""`Coach.handle` is idempotent per platform message id: a retried event returns the recorded reply,
and never opens, updates or notifies twice, even when the first attempt failed half-way."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.handoff.escalations import EscalationRow
from bot.handoff.outbox import OutboxRow
from bot.models import InboundMessage, Route
from bot.state.database import StateError
from bot.state.memory import TurnRow


def msg(text: str, message_id: str | None, conversation: str = "D0IDEM0001") -> InboundMessage:
    return InboundMessage(platform="slack", conversation_id=conversation, user_id="U2147483697", text=text,
                          message_id=message_id)


def counts(runtime: Any) -> tuple[int, int, list[int]]:
    with runtime.db.session() as s:
        turns = s.scalar(select(func.count()).select_from(TurnRow))
        outbox = s.scalar(select(func.count()).select_from(OutboxRow))
        details = [len(r.details) for r in s.scalars(select(EscalationRow).order_by(EscalationRow.id)).all()]
    return turns, outbox, details


@pytest.fixture
def delivering(settings, store):
    """A runtime whose outbox has a target (a webhook nobody answers), so rows are written."""
    from adapters.wiring import build_runtime
    from bot.settings import Settings

    s = Settings(data_dir=settings.data_dir, config_dir=settings.config_dir,
                 webhook={"url": "http://127.0.0.1:9/hook", "secret": "x"},
                 outbox={"poll_seconds": 30, "backoff_base_seconds": 30})
    rt = build_runtime(s, auto_starter=False)
    yield rt
    rt.close(flush_seconds=0.1)


@pytest.mark.parametrize("text,route", [
    ("how do I make a quick exit ticket in google forms?", Route.COACH),
    ("can I speak to a human integrator please", Route.INTEGRATOR),
    ("the projector in room 12 shows no signal and my class is waiting", Route.HELPDESK),
])
def test_the_same_message_twice_is_answered_once(delivering, text: str, route: Route) -> None:
    coach = delivering.coach
    first = coach.handle(msg(text, "Ev0SAME0001"))
    assert first.route is route
    after_first = counts(delivering)
    again = coach.handle(msg(text, "Ev0SAME0001"))
    assert (again.text, again.route, again.turn_id) == (first.text, first.route, first.turn_id)
    assert again.source_ids() == first.source_ids()
    assert (again.handoff is None) == (first.handoff is None)
    if first.handoff is not None:
        assert (again.handoff.ticket, again.handoff.created) == (first.handoff.ticket, True)
    assert counts(delivering) == after_first  # no second turn, escalation detail or delivery row
    # A different message id is a new message.
    coach.handle(msg(text, "Ev0OTHER001"))
    assert counts(delivering)[0] == after_first[0] + 1


def test_a_rerun_after_a_state_error_raises_the_ticket_once(delivering, monkeypatch) -> None:
    """As the Slack adapter does: the turn's record fails after the escalation was opened, and it runs again."""
    coach = delivering.coach
    real = coach.memory.record
    calls = {"n": 0}

    def failing_once(**kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StateError("the state database went away")
        return real(**kwargs)

    monkeypatch.setattr(coach.memory, "record", failing_once)
    message = msg("can I speak to a human integrator please", "Ev0RERUN001", conversation="D0RERUN001")
    with pytest.raises(StateError):
        coach.handle(message)
    reply = coach.handle(message)
    assert reply.handoff is not None and reply.handoff.created
    assert "added" not in reply.text.lower() and reply.handoff.ticket in reply.text
    _turns, _outbox, details = counts(delivering)
    assert details == [1]  # one detail: the re-run added nothing
    rows = delivering.delivery.outbox.rows()
    assert [(r.event, r.channel) for r in rows] == [("opened", "webhook")]  # no spurious update
