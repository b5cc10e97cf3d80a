"""The Teams ActivityHandler's own work, through botbuilder's real TestAdapter pipeline, with a fake coach.

What is tested here is what the adapter carries, not what the coach answers: which activities
reach the core (and with what text), which are ignored, that a redelivered activity is answered
once, that conversation references are stored, the typing indicator, and proactive sends. The
coach is `tests/fakes.FakeCoach`, so no model, knowledge base or triage is loaded; the state
database (dedupe, references) is a real SQLite file. Answers of the real coach through the same
pipeline are in tests/test_teams_bot.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity

from adapters.teams.bot import TeamsCoachBot
from adapters.teams.cards import CARD_CONTENT_TYPE
from adapters.teams.proactive import TeamsNotifier, UnknownConversation
from adapters.teams.references import ReferenceStore
from bot.models import Action
from bot.state.database import StateDB
from bot.state.inbound import ProcessedEvents
from tests.bot_connector_server import TeamsActivities, card_element
from tests.fakes import FakeCoach

acts = TeamsActivities()


@dataclass
class Harness:
    adapter: TestAdapter
    bot: TeamsCoachBot
    references: ReferenceStore
    coach: FakeCoach

    async def send(self, data: dict) -> list[Activity]:
        """Deliver one activity through the real pipeline; returns what the bot sent during the turn."""
        self.adapter.activity_buffer.clear()
        await self.adapter.receive_activity(Activity().deserialize(data))
        return list(self.adapter.activity_buffer)


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'state.db'}")


def make_harness(db: StateDB, coach: FakeCoach | None = None, **kwargs) -> Harness:
    coach = coach or FakeCoach()
    references = ReferenceStore(db)
    bot = TeamsCoachBot(coach, references=references, claim_event=ProcessedEvents(db).claim,
                        integrator_name="the integration team", **kwargs)
    return Harness(TestAdapter(bot.on_turn), bot, references, coach)


@pytest.fixture
def teams(db: StateDB) -> Harness:
    return make_harness(db)


def messages(sent: list[Activity]) -> list[Activity]:
    return [a for a in sent if a.type == "message"]


def only_card(sent: list[Activity]) -> dict:
    msgs = messages(sent)
    assert len(msgs) == 1, f"expected one message, got {[(m.type, m.text) for m in sent]}"
    attachments = msgs[0].attachments or []
    assert len(attachments) == 1 and attachments[0].content_type == CARD_CONTENT_TYPE
    return attachments[0].content


async def test_a_channel_mention_reaches_the_core_without_the_mention(teams):
    data = acts.channel("how do exit tickets work?", channel="19:staff@thread.tacv2")
    card = only_card(await teams.send(data))
    [message] = teams.coach.messages
    assert message.text == "how do exit tickets work?"  # "<at>Integration Coach</at>" never reached the core
    assert (message.platform, message.user_id) == ("teams", "29:ana")
    assert message.memory_key == f"teams:19:staff@thread.tacv2:{data['id']}"
    assert card_element(card, "reply")["text"].startswith("You said: how do exit tickets work?")


async def test_foreign_card_data_is_ignored(teams):
    question = acts.personal("hello", conversation="a:1foreign")
    assert await teams.send(acts.submit(question, action="launch_rockets", turn_id="t")) == []
    assert teams.coach.messages == [] and teams.coach.actions == []


async def test_a_card_click_reaches_the_core_as_an_action(teams):
    question = acts.personal("hello", conversation="a:1click")
    await teams.send(acts.submit(question, action="helped", turn_id="fake-turn-1"))
    [event] = teams.coach.actions
    assert (event.action, event.turn_id, event.conversation_id) == (Action.HELPED, "fake-turn-1", "a:1click")


async def test_welcome_when_the_bot_is_added_and_only_then(teams):
    sent = await teams.send(acts.bot_added(conversation="a:1new"))
    assert len(messages(sent)) == 1 and "Integration Coach" in sent[0].text
    assert "the integration team" in sent[0].text
    assert await teams.send(acts.bot_added(conversation="19:t@thread.tacv2", conversation_type="channel",
                                           include_bot=False, others=("bea",))) == []
    assert teams.coach.messages == []
    assert teams.references.get("teams:a:1new") is not None  # reachable before anyone writes


async def test_unknown_activity_type_is_ignored(teams):
    data = acts.personal("hello")
    data["type"] = "somethingNew"
    assert await teams.send(data) == []
    assert teams.coach.messages == []


async def test_a_redelivered_activity_is_answered_once(teams):
    data = acts.personal("how do exit tickets work?", conversation="a:1retry")
    assert len(messages(await teams.send(data))) == 1
    assert await teams.send(dict(data)) == []
    assert len(teams.coach.messages) == 1


async def test_references_are_stored_on_every_turn(teams):
    data = acts.channel("hi there", channel="19:staff@thread.tacv2")
    await teams.send(data)
    chain = teams.references.get(f"teams:19:staff@thread.tacv2:{data['id']}")
    assert chain["conversation"]["id"] == f"19:staff@thread.tacv2;messageid={data['id']}"
    assert chain["serviceUrl"] == acts.service_url
    assert teams.references.get("teams:19:staff@thread.tacv2")["conversation"]["id"] == "19:staff@thread.tacv2"
    assert teams.references.get("teams-user:29:ana")["user"]["id"] == "29:ana"


async def test_a_persons_direct_chat_is_kept_over_later_channel_posts(teams):
    await teams.send(acts.personal("hello", conversation="a:1dan", user="dan"))
    await teams.send(acts.channel("hello", channel="19:staff@thread.tacv2", user="dan"))
    assert teams.references.get("teams-user:29:dan")["conversation"]["id"] == "a:1dan"
    await teams.send(acts.channel("hello", channel="19:staff@thread.tacv2", user="eve"))
    assert teams.references.get("teams-user:29:eve")["conversation"]["conversationType"] == "channel"


async def test_typing_is_shown_while_a_slow_answer_is_composed(db):
    slow = make_harness(db, FakeCoach(delay=0.5), typing_after=0.05)
    sent = await slow.send(acts.personal("how do exit tickets work?", conversation="a:1slow"))
    assert [a.type for a in sent] == ["typing", "message"]


async def test_no_typing_for_a_quick_answer(db):
    quick = make_harness(db, typing_after=5.0)
    sent = await quick.send(acts.personal("how do exit tickets work?", conversation="a:1quick"))
    assert [a.type for a in sent] == ["message"]


async def test_notifier_sends_into_a_stored_conversation(teams):
    await teams.send(acts.personal("hello", conversation="a:1later"))
    notifier = TeamsNotifier(teams.adapter, teams.references)
    teams.adapter.activity_buffer.clear()
    await notifier.send_text("teams:a:1later", "An integrator has picked up your request (I-0001).")
    sent = list(teams.adapter.activity_buffer)
    assert len(sent) == 1 and sent[0].text.startswith("An integrator has picked up")
    assert sent[0].conversation.id == "a:1later" and sent[0].recipient.id == "29:ana"
    with pytest.raises(UnknownConversation, match="teams:a:1never"):
        await notifier.send_text("teams:a:1never", "hello")
