"""What every check-in sender must do, run against Slack's and Teams' on their loopback stand-ins.

`CheckinDispatcher` (bot/checkins/sending.py) hands any `CheckinSender` a `CheckinMessage` and
stores what it returns; these are the promises it relies on: the sender says which platform it
posts to; one send is one message, in the conversation the check-in was offered in, with the
reply's text and its buttons carrying the check-in's turn (so a click resolves); the receipt can
be stored as JSON; and a refused post raises, posts nothing, and a later attempt posts once.

Senders and receivers: `SlackCheckinSender` to the Slack Web API stand-in
(tests/slack_api_server.py), `TeamsCheckinSender` through `TeamsNotifier` to the Bot Connector
stand-in (tests/bot_connector_server.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from adapters.delivery.checkin_senders import SlackCheckinSender, TeamsCheckinSender
from adapters.teams.proactive import TeamsNotifier
from adapters.teams.references import ReferenceStore
from bot.checkins.sending import CheckinMessage, CheckinSender
from bot.models import Action, Reply, Route
from bot.settings import Settings
from bot.state.database import StateDB

from bot_connector_server import BotConnectorServer, serving_in_thread
from conftest import CONFIG_DIR
from slack_api_server import SlackAPIServer

TEXT = "Last week you planned to try exit tickets with your year 5s. How did it go?"
TURN = "turn-checkin-42"
REPLY = Reply(text=TEXT, route=Route.COACH, turn_id=TURN, actions=[Action.WENT_WELL, Action.WENT_MIXED, Action.NOT_YET])


class Case:
    platform = ""
    conversation = ""
    platform_ref: dict[str, Any] = {}

    def sender(self) -> CheckinSender:
        raise NotImplementedError

    def received(self) -> list[tuple[str, str]]:
        """(conversation, message as text) for every message the platform accepted."""
        raise NotImplementedError

    def refuse(self) -> None:
        raise NotImplementedError

    def message(self, attempt: int = 1) -> CheckinMessage:
        return CheckinMessage(checkin_id=42, platform=self.platform, conversation_id=self.conversation, thread_id=None,
                              user_id="U0TEACHER", memory_key=f"{self.platform}:{self.conversation}",
                              platform_ref=self.platform_ref, reply=REPLY, attempt=attempt)


class SlackCase(Case):
    platform, conversation = "slack", "D0TEACHER"
    platform_ref = {"channel": "D0TEACHER"}

    def __init__(self, slack: SlackAPIServer) -> None:
        self.slack = slack

    def sender(self) -> CheckinSender:
        return SlackCheckinSender("xoxb-contract", api_url=self.slack.base_url)

    def received(self) -> list[tuple[str, str]]:
        return [(channel, json.dumps(m)) for (channel, _), m in self.slack.messages.items()]

    def refuse(self) -> None:
        self.slack.fail_next("chat.postMessage", "ratelimited")


class TeamsCase(Case):
    platform, conversation = "teams", "a:1personal"

    def __init__(self, connector: BotConnectorServer, db: StateDB, data_dir: Path) -> None:
        self.connector, self.db = connector, db
        self.settings = Settings(data_dir=data_dir, config_dir=CONFIG_DIR)
        # The reference the Teams adapter stored when the teacher last wrote in this chat.
        ReferenceStore(db).save(f"teams:{self.conversation}", {
            "channelId": "msteams", "serviceUrl": connector.url, "bot": {"id": "28:coach-bot"},
            "user": {"id": "29:ana", "name": "Ana"},
            "conversation": {"id": self.conversation, "conversationType": "personal", "tenantId": "t1"}},
            kind="conversation")

    def sender(self) -> CheckinSender:
        return TeamsCheckinSender(TeamsNotifier.from_settings(self.settings, self.db))

    def received(self) -> list[tuple[str, str]]:
        return [(r.conversation_id or "", json.dumps(r.body)) for r in self.connector.messages()]

    def refuse(self) -> None:
        self.connector.fail_next = 1


@pytest.fixture(params=["slack", "teams"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    with ExitStack() as stack:
        if request.param == "slack":
            yield SlackCase(stack.enter_context(SlackAPIServer()))
        else:
            db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
            stack.callback(db.engine.dispose)
            yield TeamsCase(stack.enter_context(serving_in_thread()), db, tmp_path / "data")


def test_one_send_is_one_message_in_the_offered_conversation_with_its_buttons(case):
    sender = case.sender()
    assert sender.platform == case.platform  # the dispatcher picks the sender by the check-in's platform
    receipt = sender.send_checkin(case.message())
    [(conversation, message)] = case.received()
    assert conversation == case.conversation
    assert "How did it go?" in message and "exit tickets" in message
    assert TURN in message  # the buttons carry the check-in's turn, so a click resolves
    for action in REPLY.actions:
        assert action.value in message
    assert receipt is None or json.loads(json.dumps(receipt)) == receipt


def test_a_refused_post_raises_posts_nothing_and_the_next_attempt_posts_once(case):
    sender = case.sender()
    case.refuse()
    with pytest.raises(Exception):  # noqa: B017 - the protocol says "raise on failure", not which error
        sender.send_checkin(case.message())
    assert case.received() == []
    sender.send_checkin(case.message(attempt=2))
    assert len(case.received()) == 1
