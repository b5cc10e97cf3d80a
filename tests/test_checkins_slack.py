"""Coaching cycles end to end through Slack: the production server, the loopback Web API stand-in,
an injectable clock. Plan stated, offer made, choice clicked, process restarted, check-in sent once
(by one of two processes sharing the state database) at the teacher's own 15:30, answer coached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.server import SlackService
from adapters.wiring import Runtime, build_runtime
from bot.settings import Settings, SlackSettings
from tests.conftest import CONFIG_DIR, FIXTURE_KB
from tests.slack_api_server import (
    SIGNING_SECRET, ApiCall, ServiceThread, SlackAPIServer, block_actions, embedded_kb, event_body, im_message,
    post_to_app,
)

pytestmark = pytest.mark.server

BOT_TOKEN = "xoxb-1234-5678-loopbacktoken"
FORM = "application/x-www-form-urlencoded"
TEACHER, DM = "U2147483697", "D024BE91L"
UTC = timezone.utc


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(tmp_path: Path, embedder, api: SlackAPIServer) -> Settings:
    slack = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "api_url": api.base_url,
             "thinking_after_seconds": 30.0}
    return Settings(data_dir=embedded_kb(FIXTURE_KB, embedder), database_url=f"sqlite:///{tmp_path / 'state.db'}",
                    config_dir=CONFIG_DIR, slack=SlackSettings(**slack),
                    checkins={"poll_seconds": 3600, "closures": ["2026-12-09"]})


class Process:
    """One bot process: a runtime and, while serving, its Slack server."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.runtime: Runtime = build_runtime(settings, auto_starter=False, clock=clock)
        self.thread: ServiceThread | None = None
        self.url = ""

    def serve(self) -> Process:
        self.thread = ServiceThread(lambda: SlackService(self.runtime, host="127.0.0.1", port=0, mode="http"))
        self.url = self.thread.start().url
        return self

    def send(self, body: str, content_type: str = "application/json") -> None:
        assert post_to_app(self.url, body, content_type=content_type).status == 200

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        self.runtime.close(flush_seconds=1.0)


@pytest.fixture
def processes(settings: Settings) -> Iterator[list[Process]]:
    made: list[Process] = []
    yield made
    for p in made:
        p.stop()


def posted_message(api: SlackAPIServer, call: ApiCall) -> dict[str, Any]:
    ts = next(ts for (ch, ts), m in api.messages.items() if ch == call.body["channel"]
              and m.get("blocks") == call.body["blocks"])
    return {**api.messages[(call.body["channel"], ts)], "ts": ts}


def button(message: dict[str, Any], action_id: str) -> str:
    return next(e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == action_id)


def test_plan_offer_choice_restart_and_one_checkin_at_the_teachers_1530(
        api: SlackAPIServer, settings: Settings, processes: list[Process]) -> None:
    api.user_tz[TEACHER] = "America/New_York"  # the teacher's Slack profile; the school default is London
    clock = Clock(datetime(2026, 12, 7, 15, 0, tzinfo=UTC))  # Monday, 10:00 in New York
    first = Process(settings, clock).serve()
    processes.append(first)

    first.send(event_body(im_message("how can I quickly check understanding at the end of a lesson?")))
    api.wait_for("chat.postMessage", 1)
    first.send(event_body(im_message("Thanks! I'll try exit tickets with 9B on Thursday")))
    offer_call = api.wait_for("chat.postMessage", 2)[1]
    assert "check in after you've tried it on Thursday" in offer_call.body["text"]
    offer = posted_message(api, offer_call)
    labels = [e["text"]["text"] for b in offer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["After that day", "In a few days", "Next week", "No thanks", "Don't offer again"]

    first.send(block_actions(offer, "coach.checkin_after_day", button(offer, "coach.checkin_after_day")),
               content_type=FORM)
    done = api.wait_for("chat.postMessage", 3)[2]
    assert "Done: I'll check in on Thursday 10 December at 15:30" in done.body["text"]
    assert api.calls("users.info")[0].body["user"] == TEACHER
    [update] = api.wait_for("chat.update")
    assert "You said: After that day" in json.dumps(update.body["blocks"])

    # The process stops; two others start on the same state database.
    first.stop()
    processes.remove(first)
    second, third = Process(settings, clock), Process(settings, clock)
    processes.extend([second, third])
    before = len(api.calls("chat.postMessage"))

    clock.now = datetime(2026, 12, 10, 20, 0, tzinfo=UTC)  # Thursday 15:00 in New York: not yet
    assert second.runtime.checkins.deliver_due().claimed == 0
    clock.now = datetime(2026, 12, 10, 20, 31, tzinfo=UTC)  # 15:31 in New York (20:31 in London: night there)
    reports = [p.runtime.checkins.deliver_due() for p in (third, second, third)]
    assert sum(r.sent for r in reports) == 1
    api.settle(quiet=0.3)
    checkins = api.calls("chat.postMessage")[before:]
    assert len(checkins) == 1
    sent = checkins[0].body
    assert sent["channel"] == DM and sent["text"] == (
        "On Thursday you were going to try exit tickets with 9B. How did it go?")
    assert sent["metadata"]["event_type"] == "coach_checkin"

    # The teacher answers on the check-in; the reply asks a reflection question before the next step.
    third.serve()
    message = posted_message(api, checkins[0])
    third.send(block_actions(message, "coach.went_mixed", button(message, "coach.went_mixed")), content_type=FORM)
    answer = api.wait_for("chat.postMessage", before + 2)[before + 1].body["text"]
    assert answer.index("surprised you") < answer.index("next step")
    [row] = third.runtime.coach.checkins.checkins.rows(user_id=TEACHER)
    assert (row.status, row.outcome, row.tz) == ("answered", "mixed", "America/New_York")
    assert [p.runtime.checkins.deliver_due().claimed for p in (second, third)] == [0, 0]
