"""Slack translation in both directions, without a network: events in, Block Kit out."""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import parse_qs

import pytest

from adapters.slack import kb_draft
from adapters.slack.translate import (
    action_from_payload, after_feedback, handoff_update, is_slack_ts, message_from_command, message_from_event,
    mrkdwn, plain_text, question_header, render_reply, route_of, source_ids_of, thinking_message, ticket_of,
)
from bot.models import ACTION_LABELS, Action, Handoff, Reply, Route, Source
from knowledge.parser import parse_text
from tests.slack_api_server import (
    BOT_USER_ID, app_mention, block_actions, bot_message, channel_join, im_message, message_changed, own_message,
    slash_command,
)

COACH_REPLY = Reply(
    text="You want your year 5s to brainstorm together.\nWhat should they notice in each other's ideas?",
    route=Route.COACH,
    sources=[Source(id="shared-wall-brainstorm", title="Brainstorming on a shared wall", url="https://example.org/b"),
             Source(id="exit-ticket-checks", title="Exit tickets & checks", url=None)],
    actions=[a for a in Action if a.is_feedback], turn_id="4f1c2a9e-0000-4000-8000-000000000001",
)


def _payload(form: str) -> dict:
    return json.loads(parse_qs(form)["payload"][0])


def test_mention_starts_a_thread_and_loses_the_mention() -> None:
    event = app_mention("how can my year 5s brainstorm together on padlet?", ts="1515449522.000016")
    msg = message_from_event(event, bot_user_id=BOT_USER_ID)
    assert msg is not None
    assert msg.text == "how can my year 5s brainstorm together on padlet?"
    assert msg.thread_id == "1515449522.000016"  # a new mention is the root of its own thread
    assert msg.conversation_id == "C0CLASSRM1" and not msg.is_direct
    assert msg.memory_key == "slack:C0CLASSRM1:1515449522.000016"


def test_follow_up_in_the_thread_shares_the_memory_key() -> None:
    first = message_from_event(app_mention("podcasts?", ts="1515449522.000016"), bot_user_id=BOT_USER_ID)
    follow = message_from_event(app_mention("and for year 3?", ts="1515449600.000100", thread_ts="1515449522.000016"),
                                bot_user_id=BOT_USER_ID)
    assert first is not None and follow is not None
    assert follow.memory_key == first.memory_key


def test_dm_is_one_conversation_unless_threaded() -> None:
    top = message_from_event(im_message("hello"), bot_user_id=BOT_USER_ID)
    threaded = message_from_event(im_message("more", thread_ts="1515449522.000016"), bot_user_id=BOT_USER_ID)
    assert top is not None and top.is_direct and top.thread_id is None and top.memory_key == "slack:D024BE91L"
    assert threaded is not None and threaded.thread_id == "1515449522.000016"


@pytest.mark.parametrize("event", [
    message_changed("edited question?"),
    bot_message("I am another bot"),
    own_message("my own earlier answer"),
    channel_join(),
    {**im_message("x"), "subtype": "message_deleted"},
    {**im_message("in a channel"), "channel_type": "channel"},  # channel messages only via app_mention
    {**app_mention("edited mention"), "edited": {"user": "U1", "ts": "1.2"}},
    {"type": "reaction_added", "user": "U1", "reaction": "thumbsup", "item": {}},
], ids=["edit", "bot", "own", "join", "deleted", "channel-message", "edited-mention", "other-event"])
def test_ignored_events(event: dict) -> None:
    assert message_from_event(event, bot_user_id=BOT_USER_ID) is None


def test_file_share_with_a_question_is_still_answered() -> None:
    event = {**im_message("why does this screen say no signal?"), "subtype": "file_share"}
    msg = message_from_event(event, bot_user_id=BOT_USER_ID)
    assert msg is not None and msg.text == "why does this screen say no signal?"


def test_plain_text_reads_slack_markup() -> None:
    raw = (f"<@{BOT_USER_ID}> ask <@U999|sam> in <#C123|year-5> about <https://padlet.com|Padlet> "
           "&amp; <https://example.org> &lt;3 <!here>")
    assert plain_text(raw, bot_user_id=BOT_USER_ID) == (
        "ask @sam in #year-5 about Padlet (https://padlet.com) & https://example.org <3 @here")


def test_slash_command_message() -> None:
    body = {k: v[0] for k, v in parse_qs(slash_command("exit tickets &amp; forms?")).items()}
    msg = message_from_command(body, thread_id="1700000001.000002")
    assert msg.text == "exit tickets & forms?"
    assert msg.conversation_id == "C0CLASSRM1" and msg.thread_id == "1700000001.000002"
    assert msg.user_id == "U2147483697" and msg.user_name == "steve"


def test_reply_blocks_carry_route_sources_and_buttons() -> None:
    out = render_reply(COACH_REPLY, thread_id="1515449522.000016")
    assert route_of(out.blocks) == "coach"
    assert source_ids_of(out.blocks) == ["shared-wall-brainstorm", "exit-ticket-checks"]
    links = [b["elements"][0]["text"] for b in out.blocks if b["type"] == "context"]
    assert "<https://example.org/b|Brainstorming on a shared wall>" in links[0]
    # No url: the title (escaped) and a "Read it" button that names the turn, thread and entry.
    [readable] = [b for b in out.blocks if b.get("block_id") == "coach.source.exit-ticket-checks"]
    assert "Exit tickets &amp; checks" in readable["text"]["text"] and "<" not in readable["text"]["text"]
    button = readable["accessory"]
    assert button["action_id"] == "coach.read_source" and button["text"]["text"] == "Read it"
    assert button["value"] == f"{COACH_REPLY.turn_id}|1515449522.000016|exit-ticket-checks"
    [actions] = [b for b in out.blocks if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == [ACTION_LABELS[a] for a in COACH_REPLY.actions]
    assert {e["value"] for e in actions["elements"]} == {f"{COACH_REPLY.turn_id}|1515449522.000016"}
    assert out.text == COACH_REPLY.text
    assert "each other's ideas?" in out.blocks[0]["text"]["text"]


def test_read_it_click_carries_the_source() -> None:
    message = {"ts": "1700000000.000001", "text": "x", "blocks": []}
    body = {k: v[0] for k, v in parse_qs(block_actions(message, "coach.read_source", "t9|1515449522.000016|exit-ticket-checks",
                                                       channel="C0CLASSRM1")).items()}
    event = action_from_payload(json.loads(body["payload"]))
    assert event is not None and event.action is Action.READ_SOURCE and event.source_id == "exit-ticket-checks"
    assert event.turn_id == "t9" and event.thread_id == "1515449522.000016"
    assert not event.action.is_feedback


def test_reply_with_a_ticket_shows_it_and_has_no_buttons() -> None:
    reply = Reply(text="I've raised a ticket.", route=Route.HELPDESK, turn_id="t1",
                  handoff=Handoff(target="helpdesk", reason="fault", ticket="H-0007", urgent=True))
    out = render_reply(reply)
    assert ticket_of(out.blocks) == "H-0007"
    assert route_of(out.blocks) == "helpdesk"
    assert not [b for b in out.blocks if b["type"] == "actions"]
    assert "marked urgent" in json.dumps(out.blocks)
    assert "H-0007" in out.text  # the notification says it too


def test_long_reply_is_split_into_sections_within_slacks_limit() -> None:
    reply = Reply(text=("word " * 500 + "\n") * 3, route=Route.COACH)
    out = render_reply(reply)
    sections = [b for b in out.blocks if b["type"] == "section"]
    assert len(sections) >= 2
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert len({s["block_id"] for s in sections}) == len(sections)  # Slack rejects duplicate block ids


def test_mrkdwn_escapes_and_translates_markdown() -> None:
    assert mrkdwn("**Try** [this](https://x.org/a?b=1&c=2) <now> & then\n- one") == (
        "*Try* <https://x.org/a?b=1&amp;c=2|this> &lt;now&gt; &amp; then\n• one")


def test_button_click_becomes_an_action_event() -> None:
    message = {"ts": "1700000001.000002", "thread_ts": "1515449522.000016", "text": COACH_REPLY.text,
               **{"blocks": render_reply(COACH_REPLY, thread_id="1515449522.000016").blocks}}
    body = _payload(block_actions(message, "coach.talk_to_person", f"{COACH_REPLY.turn_id}|1515449522.000016",
                                  channel="C0CLASSRM1"))
    event = action_from_payload(body)
    assert event is not None
    assert event.action is Action.TALK_TO_PERSON and event.turn_id == COACH_REPLY.turn_id
    assert event.memory_key == "slack:C0CLASSRM1:1515449522.000016"
    assert event.platform_ref.message_ts == "1700000001.000002"
    bad = {**body, "actions": [{**body["actions"][0], "action_id": "coach.unknown"}]}
    assert action_from_payload(bad) is None


def test_feedback_replaces_the_buttons_with_a_line() -> None:
    blocks = render_reply(COACH_REPLY).blocks
    dm = after_feedback(blocks, action=Action.HELPED, user_id="U1", direct=True)
    assert not [b for b in dm if b["type"] == "actions"]
    assert dm[-1]["block_id"] == "coach.feedback" and "You said: This helped" in dm[-1]["elements"][0]["text"]
    assert source_ids_of(dm) == source_ids_of(blocks)  # the answer itself stays
    channel = after_feedback(blocks, action=Action.NOT_QUITE, user_id="U1", direct=False)
    assert "<@U1> said: Not quite" in channel[-1]["elements"][0]["text"]


def test_thinking_and_question_header() -> None:
    header = question_header("U1", "exit tickets?")
    thinking = thinking_message(header)
    assert [b["block_id"] for b in thinking.blocks] == ["coach.question", "coach.thinking"]
    answered = render_reply(COACH_REPLY, header=header)
    assert answered.blocks[0]["block_id"] == "coach.question" and route_of(answered.blocks) == "coach"


def test_handoff_update_drops_used_buttons() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "New handoff I-0003"}},
              {"type": "actions", "elements": [{"type": "button", "action_id": "handoff_claim", "value": "3"},
                                               {"type": "button", "action_id": "handoff_resolve", "value": "3"}]}]
    claimed = handoff_update(blocks, text="I-0003 claimed by <@U5>", action="claim")
    assert claimed.blocks[0]["text"]["text"] == "I-0003 claimed by &lt;@U5&gt;"
    assert [e["action_id"] for e in claimed.blocks[1]["elements"]] == ["handoff_resolve"]
    resolved = handoff_update(claimed.blocks, text="I-0003 resolved", action="resolve")
    assert [b["type"] for b in resolved.blocks] == ["section"]


def test_is_slack_ts() -> None:
    assert is_slack_ts("1515449522.000016")
    assert not is_slack_ts("slash-1334.5.abc") and not is_slack_ts(None)


# -- knowledge-base drafts ----------------------------------------------------------------------

SHARED = ("Shared walls work when students respond to each other, not just post. "
          "What should they notice in each other's ideas? How will you know it moved their thinking?")


def test_draft_modal_is_prefilled_from_the_message() -> None:
    view = kb_draft.draft_modal({"text": SHARED, "ts": "1515449522.000016"}, channel_id="C1")
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["kb_title"]["element"]["initial_value"] == "Shared walls work when students respond to each other, not just post"
    assert blocks["kb_questions"]["element"]["initial_value"].splitlines() == [
        "What should they notice in each other's ideas?", "How will you know it moved their thinking?"]
    assert blocks["kb_body"]["element"]["initial_value"] == SHARED
    assert json.loads(view["private_metadata"]) == {"channel": "C1", "ts": "1515449522.000016"}


def _values(title: str, questions: str, body: str, kind: str = "strategy") -> dict:
    return {
        "kb_title": {"value": {"type": "plain_text_input", "value": title}},
        "kb_kind": {"value": {"type": "static_select", "selected_option": {"value": kind}}},
        "kb_grades": {"value": {"type": "multi_static_select", "selected_options": [{"value": "3-5"}]}},
        "kb_tags": {"value": {"type": "plain_text_input", "value": "collaboration, student voice"}},
        "kb_questions": {"value": {"type": "plain_text_input", "value": questions}},
        "kb_body": {"value": {"type": "plain_text_input", "value": body}},
    }


def test_submission_writes_a_draft_in_the_contract_format(tmp_path) -> None:
    view = {**kb_draft.draft_modal({"text": SHARED, "ts": "1.2"}, channel_id="C1"),
            "state": {"values": _values("Shared walls", "What should they notice?\nHow will you know?", SHARED)}}
    entry, errors = kb_draft.entry_from_view(view, user_id="U0INTEGRAT", today=date(2026, 3, 1))
    assert errors == {} and entry is not None
    path = kb_draft.write_draft(entry, tmp_path)
    again = kb_draft.write_draft(entry, tmp_path)  # same title: a second draft, never an overwrite
    assert path.name == "shared-walls.md" and again.name == "shared-walls-2.md"
    parsed, problems = parse_text(path.read_text(), str(path))
    assert parsed is not None and parsed.title == "Shared walls" and parsed.grades == ["3-5"]
    assert parsed.questions == ["What should they notice?", "How will you know?"]
    assert parsed.extra["status"] == "draft" and parsed.extra["source"] == "slack:C1/1.2"
    assert parsed.owner == "slack:U0INTEGRAT"
    assert any("status" in str(p) for p in problems)  # the importer flags the draft marker


def test_submission_errors_point_at_the_field() -> None:
    view = {"state": {"values": _values("", "not a question", "")}}
    entry, errors = kb_draft.entry_from_view(view, user_id="U1")
    assert entry is None
    assert set(errors) >= {"kb_title", "kb_questions", "kb_body"}
    assert "?" in errors["kb_questions"]


def test_manifest_matches_what_the_app_listens_for() -> None:
    import yaml

    from adapters.slack.app import COMMAND, KB_COMMAND
    from tests.conftest import CONFIG_DIR

    manifest = yaml.safe_load((CONFIG_DIR / "slack-manifest.yaml").read_text())
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    assert settings["socket_mode_enabled"] is True and settings["interactivity"]["is_enabled"] is True
    assert {c["command"] for c in manifest["features"]["slash_commands"]} == {COMMAND, KB_COMMAND}
    [shortcut] = manifest["features"]["shortcuts"]
    assert shortcut["callback_id"] == kb_draft.SHORTCUT_CALLBACK and shortcut["type"] == "message"
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {"app_mentions:read", "chat:write", "commands",
                                                              "im:history", "users:read"}
