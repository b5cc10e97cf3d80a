"""The Teams ActivityHandler through botbuilder's real TestAdapter pipeline, against the real coach.

No SDK mocks: TestAdapter subclasses the production BotAdapter, runs the middleware pipeline
and our handler, and buffers what the bot sent (and updated) for us to read. What the adapter does
whatever the coach answers (ignored activities, dedupe, references, typing, proactive sends) is in
tests/test_teams_bot_translate.py, with a fake coach.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from botbuilder.core import serializer_helper
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity
from sqlalchemy import func, select

from adapters.teams.bot import TeamsCoachBot
from adapters.teams.references import ReferenceStore
from adapters.teams.cards import CARD_CONTENT_TYPE
from bot.handoff.escalations import EscalationRow
from bot.state.memory import FeedbackRow, TurnRow
from bot.state.inbound import ProcessedEvents
from tests.bot_connector_server import (
    TeamsActivities,
    assert_scenario_card,
    card_element,
    assert_source_row,
    read_actions,
    source_elements,
)
from tests.scenarios import FOLLOW_UP, SCENARIOS

acts = TeamsActivities()


@dataclass
class Harness:
    adapter: TestAdapter
    bot: TeamsCoachBot
    references: ReferenceStore
    runtime: object

    async def send(self, data: dict) -> list[Activity]:
        """Deliver one activity through the real pipeline; returns what the bot sent during the turn."""
        self.adapter.activity_buffer.clear()
        await self.adapter.receive_activity(Activity().deserialize(data))
        return list(self.adapter.activity_buffer)

    def count(self, row, *where) -> int:
        with self.runtime.db.session() as s:
            return s.scalar(select(func.count()).select_from(row).where(*where))


def make_harness(runtime, coach=None, **kwargs) -> Harness:
    references = ReferenceStore(runtime.db)
    bot = TeamsCoachBot(coach or runtime.coach, references=references, claim_event=ProcessedEvents(runtime.db).claim,
                        integrator_name="the integration team", **kwargs)
    return Harness(TestAdapter(bot.on_turn), bot, references, runtime)


@pytest.fixture
def teams(shared_runtime) -> Harness:
    return make_harness(shared_runtime)


def messages(sent: list[Activity]) -> list[Activity]:
    return [a for a in sent if a.type == "message"]


def only_card(sent: list[Activity]) -> dict:
    msgs = messages(sent)
    assert len(msgs) == 1, f"expected one message, got {[(m.type, m.text) for m in sent]}"
    attachments = msgs[0].attachments or []
    assert len(attachments) == 1 and attachments[0].content_type == CARD_CONTENT_TYPE
    return attachments[0].content


def turn_id_of(card: dict) -> str:
    return card["actions"][0]["data"]["turn_id"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_scenario_in_a_personal_chat(teams, scenario):
    conversation = f"a:1dm-{scenario.name.replace(' ', '-')}"
    card = only_card(await teams.send(acts.personal(scenario.text, conversation=conversation)))
    assert_scenario_card(card, scenario, teams.runtime.store.entries())
    with teams.runtime.db.session() as s:
        turn = s.scalars(select(TurnRow).where(TurnRow.memory_key == f"teams:{conversation}")).one()
    assert (turn.route, turn.platform, turn.user_id) == (scenario.route, "teams", "29:ana")
    if scenario.handoff_target:
        assert teams.count(EscalationRow, EscalationRow.memory_key == f"teams:{conversation}",
                           EscalationRow.target == scenario.handoff_target) == 1


@pytest.mark.parametrize("scenario", [SCENARIOS[0], SCENARIOS[2], SCENARIOS[4]], ids=lambda s: s.name)
async def test_channel_mention_is_answered_in_its_reply_chain(teams, scenario):
    data = acts.channel(scenario.text, channel="19:staff@thread.tacv2")
    card = only_card(await teams.send(data))
    assert_scenario_card(card, scenario, teams.runtime.store.entries())
    with teams.runtime.db.session() as s:
        turn = s.scalars(select(TurnRow).where(
            TurnRow.memory_key == f"teams:19:staff@thread.tacv2:{data['id']}")).one()
    assert turn.text == scenario.text  # "<at>Integration Coach</at>" never reached the core


async def test_group_chat_mention(teams):
    card = only_card(await teams.send(acts.group(SCENARIOS[1].text, conversation="19:grp@thread.v2")))
    assert_scenario_card(card, SCENARIOS[1], teams.runtime.store.entries())
    assert teams.count(TurnRow, TurnRow.memory_key == "teams:19:grp@thread.v2") == 1


async def test_follow_up_in_a_reply_chain_shares_memory(teams):
    first, second, expected = FOLLOW_UP
    root = acts.channel(first, channel="19:staff@thread.tacv2")
    only_card(await teams.send(root))
    reply = acts.channel(second, channel="19:staff@thread.tacv2", thread=root["id"])
    card = only_card(await teams.send(reply))
    assert_source_row(source_elements(card)[0], teams.runtime.store.entries()[expected])
    key = f"teams:19:staff@thread.tacv2:{root['id']}"
    assert teams.count(TurnRow, TurnRow.memory_key == key) == 2
    # A new post in the same channel is a new conversation.
    only_card(await teams.send(acts.channel(second, channel="19:staff@thread.tacv2")))
    assert teams.count(TurnRow, TurnRow.memory_key == key) == 2


async def test_follow_up_in_a_personal_chat(teams):
    first, second, expected = FOLLOW_UP
    only_card(await teams.send(acts.personal(first, conversation="a:1follow")))
    card = only_card(await teams.send(acts.personal(second, conversation="a:1follow")))
    assert_source_row(source_elements(card)[0], teams.runtime.store.entries()[expected])


async def test_double_click_escalates_once_and_updates_the_card(teams):
    question = acts.personal(SCENARIOS[0].text, conversation="a:1click")
    card = only_card(await teams.send(question))
    turn_id = turn_id_of(card)

    first = await teams.send(acts.submit(question, action="talk_to_person", turn_id=turn_id, reply_to="1"))
    answer = only_card(first)
    facts = {f["title"]: f["value"] for f in card_element(answer, "handoff")["facts"]}
    assert facts["Ticket"].startswith("I-")
    second = await teams.send(acts.submit(question, action="talk_to_person", turn_id=turn_id, reply_to="1"))
    assert second == []  # the core counted the first click; nothing more is said

    assert teams.count(EscalationRow, EscalationRow.memory_key == "teams:a:1click") == 1
    assert teams.count(FeedbackRow, FeedbackRow.turn_id == turn_id) == 1
    assert len(teams.adapter.updated_activities) == 1
    updated = teams.adapter.updated_activities[0]
    new_card = updated.attachments[0].content
    assert "actions" not in new_card
    assert card_element(new_card, "chosen")["text"] == "✓ Talk to a person (Ana Teacher)"
    assert updated.id == teams.references.card(turn_id).activity_id  # the id the card was sent with


async def test_this_helped_thanks_without_a_handoff(teams):
    question = acts.personal(SCENARIOS[1].text, conversation="a:1helped")
    turn_id = turn_id_of(only_card(await teams.send(question)))
    answer = only_card(await teams.send(acts.submit(question, action="helped", turn_id=turn_id)))
    assert card_element(answer, "reply")["text"].startswith("Glad it helped")
    assert teams.count(EscalationRow, EscalationRow.memory_key == "teams:a:1helped") == 0


async def test_read_it_on_a_source_without_a_link_replies_with_its_note(teams):
    question = acts.personal(SCENARIOS[1].text, conversation="a:1read")  # answered from an entry with no link
    card = only_card(await teams.send(question))
    [row] = [r for r in source_elements(card) if r["id"] == "source-exit-ticket-checks"]
    [read] = read_actions(row)
    assert "Quick digital exit tickets" not in card_element(card, "reply")["text"]  # drawn once, as the row
    click = acts.submit(question, action=read["data"]["action"], turn_id=read["data"]["turn_id"],
                        source_id=read["data"]["source_id"])
    note = only_card(await teams.send(click))
    assert "Two questions at the end of a lesson" in card_element(note, "reply")["text"]
    # Reading is not a verdict: no feedback is counted, the card keeps its buttons, and it can be read again.
    assert teams.count(FeedbackRow, FeedbackRow.turn_id == read["data"]["turn_id"]) == 0
    assert teams.adapter.updated_activities == []
    again = acts.submit(question, action="read_source", turn_id=read["data"]["turn_id"], source_id="exit-ticket-checks")
    assert "Two questions" in card_element(only_card(await teams.send(again)), "reply")["text"]


async def test_read_it_on_a_source_the_reply_did_not_offer_is_refused(teams):
    question = acts.personal(SCENARIOS[1].text, conversation="a:1read2")
    turn_id = turn_id_of(only_card(await teams.send(question)))
    note = only_card(await teams.send(acts.submit(question, action="read_source", turn_id=turn_id,
                                                  source_id="ai-essays")))
    assert "couldn't find that resource" in card_element(note, "reply")["text"]


async def test_tech_problem_click_in_a_channel_opens_a_helpdesk_ticket(teams):
    question = acts.channel(SCENARIOS[0].text, channel="19:staff@thread.tacv2")
    turn_id = turn_id_of(only_card(await teams.send(question)))
    answer = only_card(await teams.send(acts.submit(question, action="tech_problem", turn_id=turn_id)))
    assert {f["title"]: f["value"] for f in card_element(answer, "handoff")["facts"]}["Ticket"].startswith("H-")
    key = f"teams:19:staff@thread.tacv2:{question['id']}"
    with teams.runtime.db.session() as s:
        row = s.scalars(select(EscalationRow).where(EscalationRow.memory_key == key)).one()
    assert row.target == "helpdesk"


async def test_invoke_action_returns_the_refreshed_card(teams):
    question = acts.personal(SCENARIOS[0].text, conversation="a:1invoke")
    turn_id = turn_id_of(only_card(await teams.send(question)))
    sent = await teams.send(acts.invoke_action(question, action="talk_to_person", turn_id=turn_id))
    assert [a.type for a in sent] == ["message", "invokeResponse"]
    body = serializer_helper(sent[1].value.body)  # what CloudAdapter writes to the HTTP response
    assert sent[1].value.status == 200 and body["statusCode"] == 200 and body["type"] == CARD_CONTENT_TYPE
    assert card_element(body["value"], "chosen")["text"].startswith("✓ Talk to a person")
    again = await teams.send(acts.invoke_action(question, action="talk_to_person", turn_id=turn_id))
    assert [a.type for a in again] == ["invokeResponse"]  # no second reply, the same card back
    assert teams.count(EscalationRow, EscalationRow.memory_key == "teams:a:1invoke") == 1
