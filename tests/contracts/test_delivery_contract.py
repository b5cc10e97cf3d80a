"""What every handoff delivery channel must do, run against each one on its real receiver on loopback.

The outbox (bot/handoff/outbox.py) drives any `DeliveryChannel` (bot/handoff/delivery.py) the
same way; these are the promises it relies on: a channel says which targets and events it
takes; one `deliver` puts exactly one message in front of people, and that message carries the
ticket; the receipt it returns can be stored as JSON; a refusal is raised as `DeliveryError`,
`permanent` only when asking again cannot help, so the outbox's retry delivers exactly one
message after a temporary one; an unreachable receiver is a temporary failure; and `probe`
checks the way there without sending a handoff.

Channels and receivers: e-mail to an aiosmtpd sink and the signed webhook to its receiver
(tests/webhook_receiver.py), the integrators' Slack channel and the Slack teacher notice to the
Slack Web API stand-in (tests/slack_api_server.py), the integrators' Teams channel and the Teams
teacher notice to the Bot Connector stand-in (tests/bot_connector_server.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters.delivery.email import EmailChannel
from adapters.delivery.slack_channel import SlackChannel, SlackTeacherNotifier
from adapters.delivery.teams_channel import TeamsChannel, TeamsTeacherNotifier
from adapters.delivery.webhook import WebhookChannel
from adapters.teams.proactive import TeamsNotifier
from adapters.teams.references import ReferenceStore
from bot.handoff.delivery import DeliveryChannel, DeliveryError, HandoffEvent, OutboxItem, TeacherChannel, TeacherNotice
from bot.settings import EmailSettings, Settings, WebhookSettings
from bot.state.database import StateDB

from bot_connector_server import BotConnectorServer, serving_in_thread
from conftest import CONFIG_DIR, free_port
from slack_api_server import SlackAPIServer
from webhook_receiver import SmtpSink, WebhookReceiver

TICKET = "I-0007"
CONTEXT = {"escalation_id": 7, "ticket": TICKET, "target": "integrator", "event": "opened",
           "title": "The teacher asked for a person", "summary": "A teacher wants to talk it through with someone.",
           "why": "the teacher asked for a person", "urgency": "normal", "status": "open",
           "teacher": "a teacher (slack user U2147483697)", "fields": {"Coach already asked": "nothing yet"}}
TARGETS = {"helpdesk", "integrator"}
CASES = ["email", "webhook", "slack_channel", "teams_channel", "teacher:slack", "teacher:teams"]
SLACK_THREAD = "1515449522.000016"


def outbox_item(key: str, *, channel: str, attempt: int = 1, notice: TeacherNotice | None = None) -> OutboxItem:
    """A claimed `opened` row as the outbox hands it over (a teacher notice is a `claimed` row)."""
    payload: dict[str, Any] = {"notice": notice.as_dict()} if notice else {"context": CONTEXT}
    return OutboxItem(id=1, key=key, escalation_id=7, ticket=TICKET, event="claimed" if notice else "opened", seq=1,
                      channel=channel, payload=payload, attempt=attempt, created_at=datetime.now(timezone.utc))


class Case:
    """One channel on its receiver: what it is given, and what the receiver accepted."""

    name = ""
    notice: TeacherNotice | None = None

    def channel(self) -> DeliveryChannel:
        raise NotImplementedError

    def unreachable(self) -> DeliveryChannel:
        """The same channel configured for a port nobody listens on."""
        raise NotImplementedError

    def received(self) -> list[str]:
        """Every message the receiver accepted (repeats included), as text to search."""
        raise NotImplementedError

    def refuse(self, *, permanent: bool) -> bool:
        """Make the receiver refuse the next delivery; False when it has no such refusal."""
        raise NotImplementedError

    def item(self, key: str, attempt: int = 1) -> OutboxItem:
        return outbox_item(key, channel=self.name, attempt=attempt, notice=self.notice)


class EmailCase(Case):
    name = "email"

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def _settings(self, port: int) -> EmailSettings:
        return EmailSettings(host="127.0.0.1", port=port, starttls=False, from_addr="coach@school.example",
                             integrator_to="Integrators <integrators@school.example>", timeout_seconds=5)

    def channel(self) -> DeliveryChannel:
        return EmailChannel(self._settings(self.sink.port))

    def unreachable(self) -> DeliveryChannel:
        return EmailChannel(self._settings(free_port()))

    def received(self) -> list[str]:
        return [m.as_string() for m in self.sink.messages]

    def refuse(self, *, permanent: bool) -> bool:
        self.sink.refuse_next("554 5.7.1 Message rejected" if permanent else "451 4.3.0 Try again later")
        return True


class WebhookCase(Case):
    name = "webhook"

    def __init__(self, hook: WebhookReceiver) -> None:
        self.hook = hook

    def channel(self) -> DeliveryChannel:
        return WebhookChannel(WebhookSettings(url=self.hook.url, secret="contract-secret", timeout_seconds=5))

    def unreachable(self) -> DeliveryChannel:
        return WebhookChannel(WebhookSettings(url=f"http://127.0.0.1:{free_port()}/hook", secret="contract-secret",
                                              timeout_seconds=5))

    def received(self) -> list[str]:
        return [json.dumps(r.body) for r in self.hook.requests if r.answered < 300]

    def refuse(self, *, permanent: bool) -> bool:
        self.hook.fail_first(1, status=400 if permanent else 503)
        return True


class SlackCase(Case):
    def __init__(self, slack: SlackAPIServer, teacher: bool) -> None:
        self.slack, self.teacher = slack, teacher
        self.name = "teacher:slack" if teacher else "slack_channel"
        if teacher:
            self.notice = TeacherNotice(platform="slack", conversation_id="C0CLASSRM1", thread_id=SLACK_THREAD,
                                        user_id="U2147483697", text=f"Good news: Sam picked up your request ({TICKET}).",
                                        ticket=TICKET, kind="claimed", platform_ref={"channel": "C0CLASSRM1"})

    def _make(self, api_url: str) -> DeliveryChannel:
        if self.teacher:
            return TeacherChannel(SlackTeacherNotifier("xoxb-contract", api_url=api_url))
        return SlackChannel("xoxb-contract", "C0INTEGRAT", api_url=api_url)

    def channel(self) -> DeliveryChannel:
        return self._make(self.slack.base_url)

    def unreachable(self) -> DeliveryChannel:
        return self._make(f"http://127.0.0.1:{free_port()}/api/")

    def received(self) -> list[str]:
        return [json.dumps(m) for m in self.slack.messages.values()]

    def refuse(self, *, permanent: bool) -> bool:
        self.slack.fail_next("chat.postMessage", "channel_not_found" if permanent else "ratelimited")
        return True


class TeamsCase(Case):
    CHANNEL = "19:integrators@thread.tacv2"

    def __init__(self, connector: BotConnectorServer, db: StateDB, data_dir: Path, teacher: bool) -> None:
        self.connector, self.db, self.teacher = connector, db, teacher
        self.settings = Settings(data_dir=data_dir, config_dir=CONFIG_DIR)
        self.name = "teacher:teams" if teacher else "teams_channel"
        if teacher:
            reference = {"channelId": "msteams", "serviceUrl": connector.url, "bot": {"id": "28:coach-bot"},
                         "user": {"id": "29:ana", "name": "Ana"},
                         "conversation": {"id": "a:1personal", "conversationType": "personal", "tenantId": "t1"}}
            self.notice = TeacherNotice(platform="teams", conversation_id="a:1personal", thread_id=None,
                                        user_id="29:ana", text=f"Good news: Sam picked up your request ({TICKET}).",
                                        ticket=TICKET, kind="claimed", platform_ref={"reference": reference},
                                        memory_key="teams:a:1personal")

    def _make(self, service_url: str) -> DeliveryChannel:
        references = ReferenceStore(self.db)
        notifier = TeamsNotifier.from_settings(self.settings, self.db)
        if self.teacher:
            notice = self.notice
            assert notice is not None
            self.notice = TeacherNotice.from_dict({**notice.as_dict(), "platform_ref": {"reference": {
                **notice.platform_ref["reference"], "serviceUrl": service_url}}})
            return TeacherChannel(TeamsTeacherNotifier(notifier, references))
        return TeamsChannel(notifier, references, self.CHANNEL, service_url=service_url, bot_id="28:coach-bot")

    def channel(self) -> DeliveryChannel:
        return self._make(self.connector.url)

    def unreachable(self) -> DeliveryChannel:
        return self._make(f"http://127.0.0.1:{free_port()}/")

    def received(self) -> list[str]:
        return [json.dumps(r.body) for r in self.connector.messages()]

    def refuse(self, *, permanent: bool) -> bool:
        if permanent:
            return False  # the Bot Connector's refusals of a new post are all worth another try (see teams_channel.py)
        self.connector.fail_next = 1
        return True


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    with ExitStack() as stack:
        name = request.param
        if name == "email":
            yield EmailCase(stack.enter_context(SmtpSink()))
        elif name == "webhook":
            yield WebhookCase(stack.enter_context(WebhookReceiver(secret="contract-secret")))
        elif name in ("slack_channel", "teacher:slack"):
            yield SlackCase(stack.enter_context(SlackAPIServer()), teacher=name == "teacher:slack")
        else:
            db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
            stack.callback(db.engine.dispose)
            yield TeamsCase(stack.enter_context(serving_in_thread()), db, tmp_path / "data", teacher=name == "teacher:teams")


def test_it_says_which_targets_and_events_it_takes(case):
    channel = case.channel()
    assert channel.name == case.name  # the outbox keys rows and receipts by it
    assert channel.targets and set(channel.targets) <= TARGETS
    assert channel.events and set(channel.events) <= set(HandoffEvent)
    assert case.item("k-1").event in channel.events


def test_one_delivery_is_one_message_carrying_the_ticket(case):
    channel = case.channel()
    receipt = channel.deliver(case.item("contract-key-1"))
    [message] = case.received()
    assert TICKET in message
    assert receipt is None or isinstance(receipt, dict)
    assert json.loads(json.dumps(receipt)) == receipt  # the outbox stores it as JSON
    channel.deliver(case.item("contract-key-2"))
    assert len(case.received()) == 2  # another row is another message, not folded into the first


def test_a_temporary_refusal_is_retryable_and_the_retry_delivers_once(case):
    channel = case.channel()
    assert case.refuse(permanent=False)
    with pytest.raises(DeliveryError) as refused:
        channel.deliver(case.item("contract-key-3"))
    assert not refused.value.permanent
    assert case.received() == []
    channel.deliver(case.item("contract-key-3", attempt=2))
    [message] = case.received()
    assert TICKET in message


def test_a_refusal_for_good_is_permanent(case):
    channel = case.channel()
    if not case.refuse(permanent=True):
        pytest.skip(f"{case.name}: the receiver has no refusal that asking again cannot mend")
    with pytest.raises(DeliveryError) as refused:
        channel.deliver(case.item("contract-key-4"))
    assert refused.value.permanent
    assert case.received() == []


def test_an_unreachable_receiver_is_a_temporary_failure(case):
    with pytest.raises(DeliveryError) as failed:
        case.unreachable().deliver(case.item("contract-key-5"))
    assert not failed.value.permanent
    assert case.received() == []


def test_probe_checks_the_way_without_sending_a_handoff(case):
    described = case.channel().probe()
    assert isinstance(described, str) and described.strip()
    assert case.received() == []
