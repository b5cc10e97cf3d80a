"""Teams translation without a network: activity JSON -> core models, Reply -> Adaptive Card."""

from __future__ import annotations

import pytest
from botbuilder.schema import Activity

from adapters.teams import cards, translate
from bot.models import ACTION_LABELS, Action, Handoff, Reply, Route, Source
from tests.bot_connector_server import TeamsActivities

acts = TeamsActivities()


def activity(data: dict) -> Activity:
    return Activity().deserialize(data)


def test_personal_message_is_direct_with_no_thread():
    msg = translate.to_inbound(activity(acts.personal("how do I make an exit ticket?", conversation="a:1xyz")))
    assert (msg.platform, msg.conversation_id, msg.thread_id) == ("teams", "a:1xyz", None)
    assert msg.is_direct and msg.user_id == "29:ana" and msg.user_name == "Ana Teacher"
    assert msg.text == "how do I make an exit ticket?"
    assert msg.memory_key == "teams:a:1xyz"
    assert msg.platform_ref.reference["conversation"]["id"] == "a:1xyz"
    assert msg.platform_ref.reference["conversation"]["tenantId"] == "tenant-1"


def test_channel_mention_is_stripped_and_the_reply_chain_is_the_thread():
    data = acts.channel("how can my year 5s brainstorm?", channel="19:abc@thread.tacv2", thread="1700")
    msg = translate.to_inbound(activity(data))
    assert msg.text == "how can my year 5s brainstorm?"
    assert "<at>" not in msg.text and "Integration Coach" not in msg.text
    assert (msg.conversation_id, msg.thread_id, msg.is_direct) == ("19:abc@thread.tacv2", "1700", False)
    assert msg.memory_key == "teams:19:abc@thread.tacv2:1700"
    assert msg.platform_ref.channel == "19:abc@thread.tacv2"


def test_only_the_bots_own_mention_is_removed():
    # The SDK helper would delete "Integration Coach" wherever it appears; the entity text is precise.
    data = acts.channel("ask <at>Jo Smith</at> and the Integration Coach team")
    msg = translate.to_inbound(activity(data))
    assert msg.text == "ask Jo Smith and the Integration Coach team"


def test_group_chat_is_not_direct_and_has_no_thread():
    msg = translate.to_inbound(activity(acts.group("help with padlet", conversation="19:g@thread.v2")))
    assert (msg.conversation_id, msg.thread_id, msg.is_direct, msg.text) == ("19:g@thread.v2", None, False,
                                                                             "help with padlet")


def test_html_entities_and_nbsp_become_plain_text():
    data = acts.personal("Q&amp;A&nbsp;for year&nbsp;3?")
    assert translate.to_inbound(activity(data)).text == "Q&A for year 3?"


def test_conversation_ids_split_on_messageid():
    assert translate.split_conversation_id("19:x@thread.tacv2;messageid=42") == ("19:x@thread.tacv2", "42")
    assert translate.split_conversation_id("a:1abc") == ("a:1abc", None)
    assert translate.conversation_key("19:x@thread.tacv2;messageid=42") == "teams:19:x@thread.tacv2:42"
    assert translate.channel_key("19:x@thread.tacv2;messageid=42") == "teams:19:x@thread.tacv2"


def coaching_reply(turn_id: str = "turn-1") -> Reply:
    return Reply(text="What should students notice?\nTry a shared wall.", route=Route.COACH, turn_id=turn_id,
                 sources=[Source(id="shared-wall", title="Shared [wall] brainstorm", url="https://ex.org/wall"),
                          Source(id="no-link", title="Exit tickets")],
                 actions=[Action.HELPED, Action.NOT_QUITE, Action.TALK_TO_PERSON, Action.TECH_PROBLEM])


def element(card: dict, element_id: str) -> dict | None:
    return next((b for b in card["body"] if b.get("id") == element_id), None)


def test_coaching_card_has_text_sources_and_the_four_actions():
    card = cards.reply_card(coaching_reply())
    assert card["type"] == "AdaptiveCard" and card["version"] == cards.CARD_VERSION
    assert element(card, "reply")["text"].startswith("What should students notice?")
    assert element(card, "source-shared-wall")["text"] == "[Shared (wall) brainstorm](https://ex.org/wall)"
    no_link = element(card, "source-no-link")
    assert no_link["columns"][0]["items"][0]["text"] == "Exit tickets"
    read = no_link["columns"][1]["items"][0]["actions"]
    assert read == [{"type": "Action.Submit", "title": "Read it",
                     "data": {"action": "read_source", "turn_id": "turn-1", "source_id": "no-link"}}]
    assert "Exit tickets" not in element(card, "reply")["text"]
    assert element(card, "route")["text"] == cards.ROUTE_LABELS[Route.COACH]
    assert element(card, "handoff") is None
    feedback = [Action.HELPED, Action.NOT_QUITE, Action.TALK_TO_PERSON, Action.TECH_PROBLEM]
    assert [a["title"] for a in card["actions"]] == [ACTION_LABELS[a] for a in feedback]
    assert all(a["type"] == "Action.Submit" for a in card["actions"])
    assert [a["data"] for a in card["actions"]] == [{"action": a.value, "turn_id": "turn-1"} for a in feedback]


def test_handoff_card_shows_route_and_ticket_and_no_buttons():
    reply = Reply(text="I've opened ticket H-0007.", route=Route.HELPDESK, turn_id="t",
                  handoff=Handoff(target="helpdesk", reason="fault", ticket="H-0007", urgent=True))
    card = cards.reply_card(reply)
    facts = {f["title"]: f["value"] for f in element(card, "handoff")["facts"]}
    assert facts == {"Ticket": "H-0007", "With": "IT helpdesk", "Priority": "urgent"}
    assert element(card, "route")["text"] == cards.ROUTE_LABELS[Route.HELPDESK]
    assert "actions" not in card
    attachment = cards.reply_activity(reply).attachments[0]
    assert attachment.content_type == "application/vnd.microsoft.card.adaptive" and attachment.content == card


def test_chosen_card_replaces_buttons_with_the_choice():
    card = cards.reply_card(coaching_reply())
    chosen = cards.chosen_card(card, Action.TALK_TO_PERSON, "Ana Teacher")
    assert "actions" not in chosen and "actions" in card  # the original is untouched
    assert element(chosen, "chosen")["text"] == "✓ Talk to a person (Ana Teacher)"
    assert element(chosen, "reply") == element(card, "reply")


def test_submit_and_invoke_become_action_events():
    question = acts.channel("hi", thread="55")
    event = translate.to_action_event(activity(acts.submit(question, action="tech_problem", turn_id="t-9")))
    assert (event.action, event.turn_id, event.thread_id, event.user_id) == (Action.TECH_PROBLEM, "t-9", "55", "29:ana")
    invoke = activity(acts.invoke_action(question, action="helped", turn_id="t-9"))
    assert translate.is_card_action(invoke)
    assert translate.to_action_event(invoke).action is Action.HELPED


@pytest.mark.parametrize("value", [{"action": "explode", "turn_id": "t"}, {"action": "helped", "turn_id": 5},
                                   {"action": "helped", "turn_id": "x" * 500}, {"something": "else"}])
def test_foreign_or_broken_card_data_is_not_an_action(value):
    data = acts.personal("")
    data.pop("text")
    data["value"] = value
    assert translate.to_action_event(activity(data)) is None


def test_bot_added_is_recognised_only_for_the_bot_itself():
    assert translate.bot_was_added(activity(acts.bot_added()))
    assert not translate.bot_was_added(activity(acts.bot_added(include_bot=False, others=("bea",))))


def test_reference_entries_cover_chain_channel_and_person():
    entries = {e.key: e for e in translate.reference_entries(activity(acts.channel("hi", thread="77")))}
    assert set(entries) == {"teams:19:staffroom@thread.tacv2:77", "teams:19:staffroom@thread.tacv2",
                            "teams-user:29:ana", "teams-user:aad-ana"}
    channel = entries["teams:19:staffroom@thread.tacv2"]
    assert channel.kind == "channel" and channel.reference["conversation"]["id"] == "19:staffroom@thread.tacv2"
    assert "activityId" not in channel.reference
    assert channel.label == "Year 5 Team / Staffroom"


@pytest.mark.parametrize("body, reason", [
    ([1, 2], "JSON object"),
    ({"serviceUrl": "http://x/", "channelId": "msteams", "conversation": {"id": "c"}}, "'type'"),
    ({"type": "message", "channelId": "msteams", "conversation": {"id": "c"}, "from": {"id": "u"}}, "serviceUrl"),
    ({"type": "message", "serviceUrl": "file:///etc", "channelId": "m", "conversation": {"id": "c"}}, "serviceUrl"),
    ({"type": "message", "serviceUrl": "http://x/", "channelId": "m", "from": {"id": "u"}}, "conversation.id"),
    ({"type": "message", "serviceUrl": "http://x/", "channelId": "m", "conversation": {"id": "c"}}, "'from'"),
    ({"type": "message", "serviceUrl": "http://x/", "channelId": "m", "conversation": {"id": "c"},
      "from": {"id": "u"}, "text": 5}, "'text'"),
    ({"type": "message", "serviceUrl": "http://x/", "channelId": "m", "conversation": {"id": "c"},
      "from": {"id": "u"}, "timestamp": "not a time"}, "deserialize"),
])
def test_activity_problems_name_the_field(body, reason):
    problem = translate.activity_problem(body)
    assert problem is not None and reason in problem


def test_real_activities_have_no_problem():
    for data in (acts.personal("hi"), acts.channel("hi"), acts.group("hi"), acts.bot_added()):
        assert translate.activity_problem(data) is None
