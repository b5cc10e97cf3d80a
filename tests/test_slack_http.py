"""Slack in HTTP mode, for real: the production aiohttp server (`SlackService`, as `coach serve slack`
runs it) on a loopback port, signed requests shaped like Slack's, and a loopback Web API stand-in
that records what reached chat.postMessage. Nothing in slack_bolt or slack_sdk is mocked.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.server import SlackService
from adapters.wiring import Runtime, build_runtime
from adapters.slack.translate import route_of, source_ids_of, ticket_of, unescape
from bot.settings import Settings, SlackSettings
from tests.conftest import CONFIG_DIR, FIXTURE_KB
from tests.scenarios import FOLLOW_UP, SCENARIOS, Scenario
from tests.slack_api_server import (
    SIGNING_SECRET, ApiCall, HttpResult, ServiceThread, SlackAPIServer, app_mention, block_actions, bot_message,
    channel_join, embedded_kb, event_body, im_message, message_action, message_changed, new_ts, own_message, post_to_app,
    slash_command, view_submission,
)

pytestmark = pytest.mark.server

BOT_TOKEN = "xoxb-1234-5678-loopbacktoken"
INTEGRATOR = "U0INTEGRAT"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def slack_overrides() -> dict[str, Any]:
    """Per-test Slack settings; override with @pytest.mark.parametrize("slack_overrides", [...])."""
    return {}


@pytest.fixture
def kb_data_dir(embedder) -> Path:
    """The fixture knowledge base, embedded once per test process (the slow part), shared read-only."""
    return embedded_kb(FIXTURE_KB, embedder)


@pytest.fixture
def settings(tmp_path: Path, kb_data_dir: Path, api: SlackAPIServer, slack_overrides: dict[str, Any]) -> Settings:
    # Overrides conftest's `settings`: the shared knowledge base, a fresh state database per test
    # (memory, escalations, dedupe), and Slack pointed at the stand-in.
    slack = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "api_url": api.base_url,
             "integrator_user_ids": [INTEGRATOR], "thinking_after_seconds": 30.0, **slack_overrides}
    return Settings(data_dir=kb_data_dir, database_url=f"sqlite:///{tmp_path / 'state.db'}", config_dir=CONFIG_DIR,
                    slack=SlackSettings(**slack))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    # Overrides conftest's `runtime`, which would embed the fixture knowledge base again per test.
    # Closed afterwards: its handoff-delivery worker must not outlive the test's Slack stand-in.
    rt = build_runtime(settings, auto_starter=False)
    yield rt
    rt.close(flush_seconds=1.0)


@pytest.fixture
def drafts_dir(tmp_path: Path) -> Path:
    return tmp_path / "drafts"


@dataclass
class RunningApp:
    url: str
    service: SlackService
    api: SlackAPIServer

    def send(self, body: str, *, content_type: str = "application/json", **kwargs: Any) -> HttpResult:
        return post_to_app(self.url, body, content_type=content_type, **kwargs)

    def event(self, event: dict[str, Any], *, event_id: str | None = None, **kwargs: Any) -> HttpResult:
        result = self.send(event_body(event, event_id=event_id), **kwargs)
        assert result.status == 200, result
        return result

    def answer_to(self, event: dict[str, Any]) -> ApiCall:
        """Send an event and return the one chat.postMessage that answers it (matched by thread or channel)."""
        before = len(self.api.calls("chat.postMessage"))
        self.event(event)
        calls = self.api.wait_for("chat.postMessage", before + 1)
        return calls[before]


@pytest.fixture
def app(runtime, api: SlackAPIServer, drafts_dir: Path) -> Iterator[RunningApp]:
    thread = ServiceThread(lambda: SlackService(runtime, host="127.0.0.1", port=0, mode="http",
                                                drafts_dir=drafts_dir))
    service = thread.start()
    try:
        yield RunningApp(service.url, service, api)
    finally:
        thread.stop()


def _posted(api: SlackAPIServer) -> int:
    return len([c for c in api.requests if c.method.startswith(("chat.", "hook:", "views."))])


# -- conversations: every scenario of the shared table, through Slack ------------------------

@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_through_a_channel_mention(app: RunningApp, scenario: Scenario) -> None:
    event = app_mention(scenario.text)
    call = app.answer_to(event)
    body = call.body
    assert body["channel"] == "C0CLASSRM1"
    assert body["thread_ts"] == event["ts"]  # answered in the thread of the question
    assert route_of(body["blocks"]) == scenario.route
    ids = source_ids_of(body["blocks"])
    if scenario.first_source:
        assert ids and ids[0] == scenario.first_source
        assert [b for b in body["blocks"] if b["type"] == "actions"], "coaching replies carry the buttons"
    if scenario.handoff_target:
        ticket = ticket_of(body["blocks"])
        assert ticket and ticket.startswith({"helpdesk": "H-", "integrator": "I-"}[scenario.handoff_target])
    shown = unescape(body["blocks"][0]["text"]["text"])  # the first section, as a reader sees it
    assert body["text"][:60] == shown[:60]  # the notification text is the reply itself


def test_follow_up_in_the_thread_keeps_its_topic(app: RunningApp) -> None:
    first_text, follow_text, expected = FOLLOW_UP
    first = app_mention(first_text)
    app.answer_to(first)
    follow = app_mention(follow_text, thread_ts=first["ts"])
    call = app.answer_to(follow)
    assert call.body["thread_ts"] == first["ts"]
    assert source_ids_of(call.body["blocks"])[0] == expected


def test_follow_up_in_a_dm(app: RunningApp) -> None:
    first_text, follow_text, expected = FOLLOW_UP
    first = app.answer_to(im_message(first_text))
    assert first.body["channel"] == "D024BE91L" and first.body.get("thread_ts") is None  # DMs answer in place
    follow = app.answer_to(im_message(follow_text))
    assert source_ids_of(follow.body["blocks"])[0] == expected


def test_ignored_events_post_nothing(app: RunningApp) -> None:
    for event in (message_changed("edited: how do exit tickets work?"), bot_message("beep"),
                  own_message("my own answer"), channel_join(),
                  {"type": "reaction_added", "user": "U1", "reaction": "eyes", "event_ts": new_ts(),
                   "item": {"type": "message", "channel": "C1", "ts": "1.2"}}):
        result = app.event(event)
        assert result.status == 200  # acknowledged, so Slack does not retry
    app.answer_to(im_message("how do I make a quick exit ticket in google forms?"))  # proves the app was listening
    app.api.settle()
    assert len(app.api.calls("chat.postMessage")) == 1


# -- signatures and retries --------------------------------------------------------------------

def test_valid_signature_is_answered_and_acked_fast(app: RunningApp) -> None:
    result = app.event(app_mention("how can my year 5s brainstorm together on padlet?"))
    assert result.seconds < 1.0
    app.api.wait_for("chat.postMessage")


@pytest.mark.parametrize("kind", ["bad-secret", "stale", "unsigned", "tampered"])
def test_bad_or_stale_signature_gets_401_and_nothing_is_posted(app: RunningApp, kind: str) -> None:
    body = event_body(im_message("how do I make a quick exit ticket in google forms?"))
    if kind == "bad-secret":
        result = app.send(body, secret="not-the-signing-secret")
    elif kind == "stale":
        result = app.send(body, timestamp=int(time.time()) - 10 * 60)  # Slack's window is five minutes
    elif kind == "unsigned":
        result = app.send(body, signed=False)
    else:
        from tests.slack_api_server import sign
        headers = sign(body)
        result = app.send(body.replace("exit ticket", "exit tickets"), signed=False, headers=headers)
    assert result.status == 401
    app.api.settle()
    assert _posted(app.api) == 0


def test_url_verification_challenge(app: RunningApp) -> None:
    result = app.send(json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                                  "type": "url_verification"}))
    assert result.status == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in result.body


def test_retry_with_the_same_event_id_is_acked_but_answered_once(app: RunningApp) -> None:
    event = app_mention("how do I make a quick exit ticket in google forms?")
    app.event(event, event_id="Ev0RETRY001")
    for attempt in (1, 2):
        retry = app.event(event, event_id="Ev0RETRY001",
                          headers={"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"})
        assert retry.status == 200
    app.api.wait_for("chat.postMessage")
    app.api.settle(quiet=0.5)
    assert len(app.api.calls("chat.postMessage")) == 1


def test_retry_to_a_second_process_sharing_the_database_is_answered_once(app: RunningApp, settings: Settings) -> None:
    from adapters.wiring import Runtime, build_runtime

    # A second replica: its own runtime, state engine and Bolt app, on the same state database.
    second = build_runtime(settings, auto_starter=False)
    other = ServiceThread(lambda: SlackService(second, host="127.0.0.1", port=0, mode="http"))
    replica = other.start()
    try:
        event = im_message("how can my year 5s brainstorm together on padlet?")
        app.event(event, event_id="Ev0SHARED01")
        post_to_app(replica.url, event_body(event, event_id="Ev0SHARED01"),
                    headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        app.api.wait_for("chat.postMessage")
        app.api.settle(quiet=0.5)
        assert len(app.api.calls("chat.postMessage")) == 1
    finally:
        other.stop()
        second.close(flush_seconds=1.0)


# -- slow answers: the thinking indicator ------------------------------------------------------

@pytest.mark.parametrize("slack_overrides", [{"thinking_after_seconds": 0.0}])
def test_slow_answer_posts_thinking_then_updates_it(app: RunningApp) -> None:
    event = app_mention("how can my year 5s brainstorm together on padlet?")
    app.event(event)
    [thinking] = app.api.wait_for("chat.postMessage")
    assert [b["block_id"] for b in thinking.body["blocks"]] == ["coach.thinking"]
    assert thinking.body["thread_ts"] == event["ts"]
    [update] = app.api.wait_for("chat.update")
    posted_ts = next(ts for (ch, ts), m in app.api.messages.items() if ch == "C0CLASSRM1")
    assert update.body["ts"] == posted_ts and update.body["channel"] == "C0CLASSRM1"
    assert route_of(update.body["blocks"]) == "coach"
    assert source_ids_of(update.body["blocks"])[0] == "shared-wall-brainstorm"
    app.api.settle()
    assert len(app.api.calls("chat.postMessage")) == 1  # one message: the indicator became the answer


@pytest.mark.parametrize("slack_overrides", [{"thinking_after_seconds": 0.0}])
def test_answer_still_arrives_when_the_indicator_was_deleted(app: RunningApp) -> None:
    app.api.fail_next("chat.update", "message_not_found")
    event = app_mention("how do I make a quick exit ticket in google forms?")
    app.event(event)
    posts = app.api.wait_for("chat.postMessage", 2)
    assert route_of(posts[1].body["blocks"]) == "coach" and posts[1].body["thread_ts"] == event["ts"]


def test_rate_limited_post_is_retried_after_retry_after(app: RunningApp) -> None:
    app.api.fail_next("chat.postMessage", "ratelimited")
    app.event(im_message("how do I make a quick exit ticket in google forms?"))
    first, second = app.api.wait_for("chat.postMessage", 2, timeout=15)
    assert second.at - first.at >= 0.9  # waited out Retry-After: 1
    assert second.body["blocks"] == first.body["blocks"] and route_of(second.body["blocks"]) == "coach"


def test_fast_answer_posts_no_thinking_indicator(app: RunningApp) -> None:
    app.answer_to(im_message("how do I make a quick exit ticket in google forms?"))
    app.api.settle()
    assert not app.api.calls("chat.update")
    assert "coach.thinking" not in json.dumps(app.api.calls("chat.postMessage")[0].body["blocks"])


# -- /coach -------------------------------------------------------------------------------------

def test_slash_command_answers_in_the_channel_and_its_thread_continues(app: RunningApp) -> None:
    first_text, follow_text, expected = FOLLOW_UP
    hook = app.api.response_url("coach-in-channel")
    ack = app.send(slash_command(first_text, response_url=hook), content_type=FORM)
    assert ack.status == 200 and ack.seconds < 1.0
    [question] = app.api.wait_for("chat.postMessage")
    assert question.body["channel"] == "C0CLASSRM1" and "thread_ts" not in question.body
    assert "<@U2147483697> asked" in question.body["text"]
    [answer] = app.api.wait_for("chat.update")
    asked_ts = next(ts for (ch, ts) in app.api.messages)
    assert answer.body["ts"] == asked_ts
    assert [b["block_id"] for b in answer.body["blocks"]][0] == "coach.question"
    assert route_of(answer.body["blocks"]) == "coach"
    # A mention in the thread under that message continues the same conversation.
    call = app.answer_to(app_mention(follow_text, thread_ts=asked_ts))
    assert call.body["thread_ts"] == asked_ts and source_ids_of(call.body["blocks"])[0] == expected
    assert not app.api.calls("hook:coach-in-channel")


@pytest.mark.parametrize("slack_overrides", [{"ephemeral_slash_replies": True}])
def test_slash_command_ephemeral(app: RunningApp) -> None:
    hook = app.api.response_url("coach-private")
    app.send(slash_command("how do I make a quick exit ticket in google forms?", response_url=hook), content_type=FORM)
    [reply] = app.api.wait_for("hook:coach-private")
    assert reply.body["response_type"] == "ephemeral"
    assert source_ids_of(reply.body["blocks"])[0] == "exit-ticket-checks"
    app.api.settle()
    assert not app.api.calls("chat.postMessage")


def test_slash_command_in_a_channel_the_bot_is_not_in_answers_privately(app: RunningApp) -> None:
    app.api.fail_next("chat.postMessage", "not_in_channel")
    hook = app.api.response_url("coach-fallback")
    app.send(slash_command("how do I make a quick exit ticket in google forms?", response_url=hook), content_type=FORM)
    [reply] = app.api.wait_for("hook:coach-fallback")
    assert reply.body["response_type"] == "ephemeral"
    assert reply.body["blocks"][0]["block_id"] == "coach.not_in_channel"
    assert route_of(reply.body["blocks"]) == "coach"


def test_slash_question_is_shown_as_typed(app: RunningApp) -> None:
    # Slack sends &, < and > escaped, and links as <url|label>; the channel sees them once escaped.
    app.send(slash_command("is &lt;b&gt; ok &amp; <https://padlet.com|padlet> fine?"), content_type=FORM)
    [question] = app.api.wait_for("chat.postMessage")
    assert question.body["text"].endswith("asked: is &lt;b&gt; ok &amp; padlet (https://padlet.com) fine?")


def test_empty_slash_command_gets_usage_in_the_ack(app: RunningApp) -> None:
    ack = app.send(slash_command("  "), content_type=FORM)
    assert ack.status == 200 and "/coach how could" in ack.json()["text"]
    app.api.settle()
    assert _posted(app.api) == 0


# -- feedback buttons -------------------------------------------------------------------------

def _answered_message(app: RunningApp, call: ApiCall) -> dict[str, Any]:
    ts = next(ts for (ch, ts), m in app.api.messages.items() if ch == call.body["channel"]
              and m.get("blocks") == call.body["blocks"])
    return {**app.api.messages[(call.body["channel"], ts)], "ts": ts}


def _button_value(message: dict[str, Any]) -> str:
    return next(e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])


def test_this_helped_updates_the_message_once_and_a_second_click_does_nothing(app: RunningApp) -> None:
    answer = app.answer_to(im_message("how do I make a quick exit ticket in google forms?"))
    message = _answered_message(app, answer)
    click = block_actions(message, "coach.helped", _button_value(message))
    assert app.send(click, content_type=FORM).status == 200
    [update] = app.api.wait_for("chat.update")
    assert update.body["ts"] == message["ts"] and update.body["channel"] == "D024BE91L"
    assert not [b for b in update.body["blocks"] if b["type"] == "actions"]
    assert "You said: This helped" in json.dumps(update.body["blocks"])
    follow = app.api.wait_for("chat.postMessage", 2)[1]
    assert "Glad it helped" in follow.body["text"] and follow.body.get("thread_ts") is None
    # The same click again (a double tap, or Slack re-sending): counted once, posted once.
    assert app.send(click, content_type=FORM).status == 200
    app.api.settle(quiet=0.5)
    assert len(app.api.calls("chat.update")) == 1 and len(app.api.calls("chat.postMessage")) == 2


@pytest.mark.parametrize("action_id, prefix", [("coach.talk_to_person", "I-"), ("coach.tech_problem", "H-")])
def test_escalating_buttons_show_the_ticket_in_the_thread(app: RunningApp, action_id: str, prefix: str) -> None:
    event = app_mention("how can my year 5s brainstorm together on padlet?")
    answer = app.answer_to(event)
    message = {**_answered_message(app, answer), "thread_ts": event["ts"]}
    app.send(block_actions(message, action_id, _button_value(message), channel="C0CLASSRM1"), content_type=FORM)
    follow = app.api.wait_for("chat.postMessage", 2)[1]
    assert follow.body["thread_ts"] == event["ts"]
    ticket = ticket_of(follow.body["blocks"])
    assert ticket and ticket.startswith(prefix)
    [update] = app.api.wait_for("chat.update")
    assert "<@U2147483697> said:" in json.dumps(update.body["blocks"])


@pytest.mark.parametrize("slack_overrides", [{"ephemeral_slash_replies": True}])
def test_button_on_an_ephemeral_answer_replies_through_the_response_url(app: RunningApp) -> None:
    app.send(slash_command("how do I make a quick exit ticket in google forms?",
                           response_url=app.api.response_url("first")), content_type=FORM)
    [reply] = app.api.wait_for("hook:first")
    message = {"ts": "1700000000.000001", "blocks": reply.body["blocks"], "text": reply.body["text"]}
    click = block_actions(message, "coach.not_quite", _button_value(message), channel="C0CLASSRM1",
                          is_ephemeral=True, response_url=app.api.response_url("click"))
    app.send(click, content_type=FORM)
    [follow] = app.api.wait_for("hook:click")
    assert follow.body["response_type"] == "ephemeral" and "What's missing" in follow.body["text"]
    app.api.settle()
    assert not app.api.calls("chat.postMessage")


def _read_button(message: dict[str, Any], source_id: str) -> dict[str, Any]:
    block = next(b for b in message["blocks"] if b.get("block_id") == f"coach.source.{source_id}")
    return block["accessory"]


def test_a_source_without_a_link_is_read_in_the_thread(app: RunningApp) -> None:
    event = app_mention("how do I make a quick exit ticket in google forms?")
    answer = app.answer_to(event)
    message = {**_answered_message(app, answer), "thread_ts": event["ts"]}
    assert source_ids_of(message["blocks"])[0] == "exit-ticket-checks"  # an entry with no link
    button = _read_button(message, "exit-ticket-checks")
    assert button["action_id"] == "coach.read_source" and button["text"]["text"] == "Read it"
    assert "Quick digital exit tickets" not in unescape(answer.body["text"])  # drawn once, under the reply
    app.send(block_actions(message, "coach.read_source", button["value"], channel="C0CLASSRM1"), content_type=FORM)
    note = app.api.wait_for("chat.postMessage", 2)[1]
    assert note.body["thread_ts"] == event["ts"]
    assert "Two questions at the end of a lesson" in unescape(note.body["text"])
    assert "?" in note.body["text"]
    # Reading is not a verdict: the buttons stay, and reading again posts the note again.
    app.send(block_actions(message, "coach.read_source", button["value"], channel="C0CLASSRM1"), content_type=FORM)
    app.api.wait_for("chat.postMessage", 3)
    assert not app.api.calls("chat.update")


def test_a_linked_source_is_a_link_not_a_button(app: RunningApp) -> None:
    answer = app.answer_to(app_mention("how can my year 5s brainstorm together on padlet?"))
    block = next(b for b in answer.body["blocks"] if b.get("block_id") == "coach.source.shared-wall-brainstorm")
    assert block["type"] == "context" and "<https://" in block["elements"][0]["text"]
    assert "https://" not in answer.body["text"]


# -- integrators: save to knowledge base, /coach-kb ------------------------------------------

def test_save_to_kb_refuses_a_teacher_politely(app: RunningApp) -> None:
    hook = app.api.response_url("refuse")
    app.send(message_action("Shared walls work when students respond.", user="U0TEACHER", response_url=hook),
             content_type=FORM)
    [refusal] = app.api.wait_for("hook:refuse")
    assert "integrators' tools" in refusal.body["text"]
    app.api.settle()
    assert not app.api.calls("views.open")


def test_save_to_kb_opens_a_prefilled_modal_and_writes_a_draft(app: RunningApp, drafts_dir: Path) -> None:
    text = ("Shared walls work when students respond to each other. "
            "What should they notice in each other's ideas?")
    assert app.send(message_action(text), content_type=FORM).status == 200
    [opened] = app.api.wait_for("views.open")
    view = opened.body["view"]
    assert opened.body["trigger_id"].startswith("13345224609.")
    assert view["callback_id"] == "save_to_kb_submit"
    fields = {b.get("block_id"): b for b in view["blocks"]}
    assert fields["kb_questions"]["element"]["initial_value"] == "What should they notice in each other's ideas?"
    values = {
        "kb_title": {"value": {"type": "plain_text_input", "value": fields["kb_title"]["element"]["initial_value"]}},
        "kb_kind": {"value": {"type": "static_select", "selected_option": {"value": "strategy"}}},
        "kb_grades": {"value": {"type": "multi_static_select", "selected_options": []}},
        "kb_tags": {"value": {"type": "plain_text_input", "value": None}},
        "kb_questions": {"value": {"type": "plain_text_input", "value": "What should they notice in each other's ideas?"}},
        "kb_body": {"value": {"type": "plain_text_input", "value": text}},
    }
    result = app.send(view_submission(view, values), content_type=FORM)
    assert result.status == 200 and result.json()["response_action"] == "update"
    [draft] = list(drafts_dir.glob("*.md"))
    assert draft.name == "shared-walls-work-when-students-respond-to-each-other.md"
    assert "status: draft" in draft.read_text() and "What should they notice" in draft.read_text()

    values["kb_questions"] = {"value": {"type": "plain_text_input", "value": "no question mark here"}}
    invalid = app.send(view_submission(view, values), content_type=FORM)
    assert invalid.json()["response_action"] == "errors" and "kb_questions" in invalid.json()["errors"]
    assert len(list(drafts_dir.glob("*.md"))) == 1


@pytest.mark.parametrize("user, expect", [(INTEGRATOR, "shared-wall-brainstorm"), ("U0TEACHER", "integrators' tools")])
def test_coach_kb_search(app: RunningApp, user: str, expect: str) -> None:
    hook = app.api.response_url("kb")
    app.send(slash_command("search brainstorm on a shared wall", command="/coach-kb", user=user, response_url=hook),
             content_type=FORM)
    [reply] = app.api.wait_for("hook:kb")
    assert reply.body["response_type"] == "ephemeral"
    assert expect in json.dumps(reply.body)


# -- handoff buttons in the integrators' channel -------------

@pytest.mark.parametrize("slack_overrides", [{"integrator_channel": "C0INTEGRAT"}])
def test_handoff_claim_and_resolve_update_the_channel_message(app: RunningApp, runtime) -> None:
    reply = runtime.coach.handle(_inbound("can I speak to a human integrator please"))
    assert reply.handoff is not None
    escalation_id = int(reply.handoff.ticket.split("-")[1])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"New handoff {reply.handoff.ticket}"}},
              {"type": "actions", "elements": [
                  {"type": "button", "action_id": "handoff_claim", "value": str(escalation_id),
                   "text": {"type": "plain_text", "text": "Claim"}},
                  {"type": "button", "action_id": "handoff_resolve", "value": str(escalation_id),
                   "text": {"type": "plain_text", "text": "Resolve"}}]}]
    message = {"ts": "1700000099.000001", "text": "New handoff", "blocks": blocks}
    app.send(block_actions(message, "handoff_claim", str(escalation_id), user=INTEGRATOR, channel="C0INTEGRAT"),
             content_type=FORM)
    clicked = lambda c: c.body.get("ts") == "1700000099.000001"  # the outbox redraws its own post too
    [claimed] = app.api.wait_for("chat.update", where=clicked)
    assert claimed.body["channel"] == "C0INTEGRAT"
    assert [e["action_id"] for b in claimed.body["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "handoff_resolve"]
    message = {**message, "blocks": claimed.body["blocks"]}
    # Resolve asks for a note first: the click opens a modal (the core said this person may resolve it).
    click = block_actions(message, "handoff_resolve", str(escalation_id), user=INTEGRATOR, channel="C0INTEGRAT",
                          response_url=app.api.response_url("resolve"))
    app.send(click, content_type=FORM)
    [opened] = app.api.wait_for("views.open")
    view = opened.body["view"]
    assert opened.body["trigger_id"] == json.loads(urllib.parse.parse_qs(click)["payload"][0])["trigger_id"]
    [note_block] = view["blocks"]
    assert note_block["optional"] is True and note_block["element"]["multiline"] is True
    assert runtime.coach.escalations.get(escalation_id).status == "claimed"  # opening the modal changed nothing
    note = "Start with a two-minute interview;\nmy student Priya Shah's group modelled it for the class."
    values = {note_block["block_id"]: {note_block["element"]["action_id"]: {"type": "plain_text_input",
                                                                            "value": note}}}
    submitted = app.send(view_submission(view, values, user=INTEGRATOR), content_type=FORM)
    assert submitted.status == 200 and not submitted.body.strip()  # an empty ack closes the modal
    row = wait_until(lambda: (r := runtime.coach.escalations.get(escalation_id)) is not None and r.status == "resolved" and r)
    assert row.resolved_by == f"slack:{INTEGRATOR}" and row.resolution_note is not None
    assert row.resolution_note.startswith("Start with a two-minute interview;\nmy student [")
    assert "Priya" not in row.resolution_note and "Shah" not in row.resolution_note
    # The outbox redraws its own card: no buttons, the note as stored.
    redrawn = app.api.wait_for("chat.update", where=lambda c: c.body.get("ts") != message["ts"]
                               and "Resolved by" in json.dumps(c.body))[-1]
    assert redrawn.body["channel"] == "C0INTEGRAT"
    assert not [b for b in redrawn.body["blocks"] if b["type"] == "actions"]
    assert "Note: Start with a two-minute interview" in json.dumps(redrawn.body) and "Priya" not in json.dumps(redrawn.body)
    # The same submission again (a redelivery) resolves nothing twice and says nothing.
    app.send(view_submission(view, values, user=INTEGRATOR), content_type=FORM)
    app.api.settle()
    assert app.api.calls("hook:resolve") == []


@pytest.mark.parametrize("slack_overrides", [{"integrator_channel": "C0INTEGRAT"}])
def test_a_resolve_note_submitted_after_someone_else_resolved_is_not_recorded(app: RunningApp, runtime) -> None:
    reply = runtime.coach.handle(_inbound("can I speak to a human integrator please"))
    escalation_id = int(reply.handoff.ticket.split("-")[1])
    message = {"ts": "1700000099.000002", "text": "New handoff", "blocks": [{"type": "actions", "elements": [
        {"type": "button", "action_id": "handoff_resolve", "value": str(escalation_id),
         "text": {"type": "plain_text", "text": "Resolve"}}]}]}
    app.send(block_actions(message, "handoff_resolve", str(escalation_id), user=INTEGRATOR, channel="C0INTEGRAT",
                           response_url=app.api.response_url("late")), content_type=FORM)
    [opened] = app.api.wait_for("views.open")
    from bot.access import Actor

    # Meanwhile it is resolved another way (a second modal, the command line): this note comes too late.
    first = runtime.coach.escalation_action(escalation_id, "resolve", Actor(platform="slack", user_id=INTEGRATOR))
    assert first.changed
    values = {"coach.handoff.note": {"note": {"type": "plain_text_input", "value": "Use Flip for this."}}}
    app.send(view_submission(opened.body["view"], values, user=INTEGRATOR), content_type=FORM)
    [told] = app.api.wait_for("hook:late")
    assert "already resolved" in told.body["text"] and told.body["response_type"] == "ephemeral"
    assert runtime.coach.escalations.get(escalation_id).resolution_note is None


@pytest.mark.parametrize("slack_overrides", [{"integrator_channel": "C0INTEGRAT"}])
def test_a_resolve_note_form_slack_would_not_open_is_said_and_changes_nothing(app: RunningApp, runtime) -> None:
    reply = runtime.coach.handle(_inbound("can I speak to a human integrator please"))
    escalation_id = int(reply.handoff.ticket.split("-")[1])
    message = {"ts": "1700000099.000003", "text": "New handoff", "blocks": [{"type": "actions", "elements": [
        {"type": "button", "action_id": "handoff_resolve", "value": str(escalation_id),
         "text": {"type": "plain_text", "text": "Resolve"}}]}]}
    app.api.fail_next("views.open", "expired_trigger_id")
    app.send(block_actions(message, "handoff_resolve", str(escalation_id), user=INTEGRATOR, channel="C0INTEGRAT",
                           response_url=app.api.response_url("slow")), content_type=FORM)
    [told] = app.api.wait_for("hook:slow")
    assert "click Resolve again" in told.body["text"] and told.body["response_type"] == "ephemeral"
    assert runtime.coach.escalations.get(escalation_id).status == "open"


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _inbound(text: str):
    from bot.models import InboundMessage

    return InboundMessage(platform="slack", conversation_id="D0HANDOFF1", user_id="U2147483697", text=text)
