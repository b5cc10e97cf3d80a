"""Nothing lost, nothing doubled: /coach commands and button clicks go through the inbound queue.

The production service (`SlackService`, slack-bolt over HTTP on loopback), signed requests, the
Web API stand-in (which keeps message metadata and answers conversations.history/replies) and a
real SQLite state database. A command or click delivered twice is acted on once; a process killed
after posting an answer but before writing its ts down is finished by another process's sweeper,
which finds the answer by its metadata and does not post it again.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.actions import action_item
from adapters.slack.commands import command_item
from adapters.slack.events import event_item, process_event
from adapters.slack.sinks import Mark, metadata
from adapters.slack.worker import Bridge, Kind
from bot.models import InboundMessage, Reply
from bot.settings import Settings
from bot.state.database import StateDB, utcnow
from bot.state.inbound import DONE, InboundQueue
from tests.slack_api_server import (
    BOT_USER_ID, SlackAPIServer, app_mention, block_actions, event_body, im_message, slash_command,
)
from tests.test_slack_http import (  # noqa: F401  (the running app and its fixtures, shared)
    BOT_TOKEN, FORM, RunningApp, _answered_message, _inbound, app, drafts_dir, kb_data_dir, runtime, settings,
    slack_overrides,
)

# ruff: noqa: F811  (pytest fixtures imported above are parameters below)

pytestmark = pytest.mark.server
QUESTION = "how do I make a quick exit ticket in google forms?"


def _queue(settings: Settings) -> InboundQueue:
    return InboundQueue(StateDB(settings.state_url))


def _wait_done(queue: InboundQueue, key: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = queue.get(key)
        if row is not None and row.status == DONE:
            return row
        time.sleep(0.1)
    raise AssertionError(f"{key} not done within {timeout}s: {queue.get(key)}")


def _killed_after_claiming(queue: InboundQueue, key: str, payload: dict[str, Any]) -> None:
    """What a process killed mid-answer leaves: the item recorded and claimed, its lease run out, no ts."""
    assert queue.record(key, payload)
    assert queue.claim(key, now=utcnow() - timedelta(seconds=queue.lease_seconds + 5)) is not None


def _post_as_the_killed_process(api: SlackAPIServer, channel: str, key: str, mark: Mark,
                                thread_ts: str | None = None) -> str:
    """The message the killed process got out before dying (a real Web API call to the stand-in)."""
    resp = WebClient(token=BOT_TOKEN, base_url=api.base_url).chat_postMessage(
        channel=channel, thread_ts=thread_ts, text="posted before the crash", metadata=metadata(key, mark))
    return str(resp["ts"])


def _meta(call: Any) -> dict[str, Any]:
    return call.body.get("metadata") or {}


# -- /coach -------------------------------------------------------------------------------------

def test_a_slash_command_delivered_twice_is_answered_once(app: RunningApp, settings: Settings) -> None:
    body = slash_command(QUESTION, response_url=app.api.response_url("twice"))
    first = app.send(body, content_type=FORM)
    second = app.send(body, content_type=FORM)  # the same trigger_id: a redelivery, not a new question
    assert first.status == 200 and second.status == 200 and first.seconds < 1.0
    [question] = app.api.wait_for("chat.postMessage")
    [answer] = app.api.wait_for("chat.update")
    key, _ = command_item(dict(urllib.parse.parse_qsl(body)))
    assert _meta(question) == {"event_type": "coach_question", "event_payload": {"inbound": key}}
    assert _meta(answer)["event_type"] == "coach_answer"
    assert list(app.api.messages) == [(question.body["channel"], answer.body["ts"])]  # the question, updated
    row = _wait_done(_queue(settings), key)
    assert row.answer_ts == answer.body["ts"]
    assert app.send(body, content_type=FORM).status == 200  # later still: acked, nothing more
    app.api.settle(quiet=0.5)
    assert len(app.api.calls("chat.postMessage")) == 1 and len(app.api.calls("chat.update")) == 1
    assert not app.api.calls("hook:twice")


def test_a_command_whose_process_died_after_posting_the_question_updates_that_question(
        app: RunningApp, settings: Settings) -> None:
    body = dict(urllib.parse.parse_qsl(slash_command(QUESTION)))
    key, payload = command_item(body)
    queue = _queue(settings)
    _killed_after_claiming(queue, key, payload)
    asked = _post_as_the_killed_process(app.api, "C0CLASSRM1", key, Mark.QUESTION)
    row = _wait_done(queue, key)  # the running service's sweeper, within seconds
    [answer] = app.api.wait_for("chat.update")
    assert answer.body["ts"] == asked and row.answer_ts == asked and _meta(answer)["event_type"] == "coach_answer"
    app.api.settle(quiet=0.5)
    assert len(app.api.calls("chat.postMessage")) == 1  # only the killed process's question
    assert app.api.calls("conversations.history")


def test_a_command_whose_process_died_after_answering_is_not_answered_again(app: RunningApp,
                                                                           settings: Settings) -> None:
    key, payload = command_item(dict(urllib.parse.parse_qsl(slash_command(QUESTION))))
    queue = _queue(settings)
    _killed_after_claiming(queue, key, payload)
    answered = _post_as_the_killed_process(app.api, "C0CLASSRM1", key, Mark.ANSWER)
    row = _wait_done(queue, key)
    app.api.settle(quiet=0.5)
    assert row.answer_ts == answered
    assert len(app.api.calls("chat.postMessage")) == 1 and not app.api.calls("chat.update")


# -- messages -----------------------------------------------------------------------------------

def test_an_answer_carries_its_inbound_key(app: RunningApp) -> None:
    answer = app.answer_to(im_message(QUESTION))
    assert _meta(answer)["event_type"] == "coach_answer"
    assert _meta(answer)["event_payload"]["inbound"].startswith("slack:Ev")


def test_a_message_whose_process_died_after_posting_the_answer_is_not_answered_twice(
        app: RunningApp, settings: Settings) -> None:
    event = app_mention("how can my year 5s brainstorm together on padlet?")
    key, payload = event_item(json.loads(event_body(event, event_id="EvPOSTED001")), BOT_USER_ID)
    queue = _queue(settings)
    _killed_after_claiming(queue, key, payload)
    answered = _post_as_the_killed_process(app.api, event["channel"], key, Mark.ANSWER, thread_ts=event["ts"])
    row = _wait_done(queue, key)
    app.api.settle(quiet=0.5)
    assert row.answer_ts == answered
    assert len(app.api.calls("chat.postMessage")) == 1 and not app.api.calls("chat.update")
    [lookup] = app.api.calls("conversations.replies")
    assert lookup.body["ts"] == event["ts"]


def test_a_message_killed_before_posting_is_still_answered_once(app: RunningApp, settings: Settings) -> None:
    event = im_message(QUESTION)
    key, payload = event_item(json.loads(event_body(event, event_id="EvNOTPOST01")), BOT_USER_ID)
    queue = _queue(settings)
    _killed_after_claiming(queue, key, payload)
    row = _wait_done(queue, key)
    app.api.settle(quiet=0.5)
    [answer] = app.api.calls("chat.postMessage")
    assert row.answer_ts and _meta(answer)["event_payload"]["inbound"] == key


class SlowCoach:
    """The real coach, taking `seconds` longer per answer: a process with a backlog on a busy machine."""

    def __init__(self, coach: Any, seconds: float) -> None:
        self.coach, self.seconds = coach, seconds

    def handle(self, message: InboundMessage) -> Reply:
        time.sleep(self.seconds)
        return self.coach.handle(message)


async def test_a_message_waiting_behind_a_backlog_is_not_taken_over_and_answered_again(
        runtime, api: SlackAPIServer) -> None:
    # benchmarks/load.py saw this: an item claimed on arrival waited in its process's answer pool
    # longer than its lease, another process's sweeper took it over and answered it, and then the
    # first process answered it too. An item is now claimed only when a thread is free to answer it.
    await asyncio.to_thread(runtime.coach.handle, _inbound("warm the masker and the embedder up"))
    queue = InboundQueue(runtime.db, lease_seconds=2.5)
    client = AsyncWebClient(token=BOT_TOKEN, base_url=api.base_url)
    busy, other = Bridge(runtime, workers=1), Bridge(runtime, workers=1)  # two processes, one thread each
    for bridge in (busy, other):
        bridge.inbound, bridge.coach = queue, SlowCoach(runtime.coach, 2.0)
        bridge.handlers[Kind.EVENT] = process_event
    events = [im_message(QUESTION, channel=f"D0BACKLG{i}") for i in range(2)]
    keys = []
    for i, event in enumerate(events):
        key, payload = event_item(json.loads(event_body(event, event_id=f"EvBACKLOG{i}")), BOT_USER_ID)
        assert queue.record(key, payload)
        keys.append(key)
    arrived = [asyncio.create_task(busy.process(key, client)) for key in keys]  # the second waits for the first
    await asyncio.sleep(3.0)  # past the second's lease, had it been claimed on arrival
    await other.sweep_once(client)
    await asyncio.gather(*arrived)
    await other.drain(timeout=10)
    await busy.drain(timeout=10)
    for event, key in zip(events, keys):
        answers = [c for c in api.requests if c.method in ("chat.postMessage", "chat.update")
                   and c.body.get("channel") == event["channel"]]
        assert len(answers) == 1, f"{key} answered {len(answers)} times: {[c.method for c in answers]}"
        assert queue.get(key).status == DONE


# -- buttons ------------------------------------------------------------------------------------

def _read_it(app: RunningApp) -> tuple[dict[str, Any], str, dict[str, Any]]:
    event = app_mention(QUESTION)
    answer = app.answer_to(event)
    message = {**_answered_message(app, answer), "thread_ts": event["ts"]}
    button = next(b["accessory"] for b in message["blocks"] if b.get("block_id") == "coach.source.exit-ticket-checks")
    return message, button["value"], event


def test_a_click_delivered_twice_is_acted_on_once(app: RunningApp, settings: Settings) -> None:
    # "Read it" posts the entry each time it is clicked: only the queue keeps a redelivery from posting twice.
    message, value, event = _read_it(app)
    click = block_actions(message, "coach.read_source", value, channel="C0CLASSRM1")
    assert app.send(click, content_type=FORM).status == 200
    assert app.send(click, content_type=FORM).status == 200
    note = app.api.wait_for("chat.postMessage", 2)[1]
    assert note.body["thread_ts"] == event["ts"] and _meta(note)["event_type"] == "coach_answer"
    key, _ = action_item(json.loads(urllib.parse.parse_qs(click)["payload"][0]))
    assert _wait_done(_queue(settings), key).answer_ts
    app.api.settle(quiet=0.5)
    assert len(app.api.calls("chat.postMessage")) == 2
    # A second, deliberate click is a new item: read again.
    app.send(block_actions(message, "coach.read_source", value, channel="C0CLASSRM1"), content_type=FORM)
    app.api.wait_for("chat.postMessage", 3)


def test_a_click_whose_process_died_after_posting_is_not_posted_again(app: RunningApp, settings: Settings) -> None:
    message, value, event = _read_it(app)
    body = json.loads(urllib.parse.parse_qs(block_actions(message, "coach.read_source", value,
                                                          channel="C0CLASSRM1"))["payload"][0])
    key, payload = action_item(body)
    queue = _queue(settings)
    _killed_after_claiming(queue, key, payload)
    posted = _post_as_the_killed_process(app.api, "C0CLASSRM1", key, Mark.ANSWER, thread_ts=event["ts"])
    row = _wait_done(queue, key)
    app.api.settle(quiet=0.5)
    assert row.answer_ts == posted
    assert len(app.api.calls("chat.postMessage")) == 2  # the answer, and the killed process's note


@pytest.mark.parametrize("slack_overrides", [{"integrator_channel": "C0INTEGRAT"}])
def test_a_claim_delivered_twice_changes_once(app: RunningApp, runtime, settings: Settings) -> None:  # noqa: F811
    reply = runtime.coach.handle(_inbound("can I speak to a human integrator please"))
    escalation_id = int(reply.handoff.ticket.split("-")[1])
    blocks = [{"type": "actions", "elements": [
        {"type": "button", "action_id": "handoff_claim", "value": str(escalation_id),
         "text": {"type": "plain_text", "text": "Claim"}}]}]
    message = {"ts": "1700000099.000001", "text": "New handoff", "blocks": blocks}
    click = block_actions(message, "handoff_claim", str(escalation_id), user="U0INTEGRAT", channel="C0INTEGRAT")
    app.send(click, content_type=FORM)
    app.send(click, content_type=FORM)
    clicked = lambda c: c.body.get("ts") == "1700000099.000001"  # noqa: E731
    app.api.wait_for("chat.update", where=clicked)
    key, _ = action_item(json.loads(urllib.parse.parse_qs(click)["payload"][0]))
    _wait_done(_queue(settings), key)
    app.api.settle(quiet=0.5)
    assert len(app.api.calls("chat.update", where=clicked)) == 1
