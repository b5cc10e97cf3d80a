"""Handoff delivery end to end, through `Coach.handle`, to real servers on loopback.

SMTP is aiosmtpd; the webhook receiver verifies the HMAC signature itself; Slack is the Slack
Web API stand-in (tests/slack_api_server.py); Teams is the Bot Connector stand-in
(tests/bot_connector_server.py) reached through the Teams adapter's TeamsNotifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters.wiring import Runtime, build_runtime
from bot.access import Actor, Outcome
from bot.models import InboundMessage, PlatformRef
from bot.handoff.delivery import DeliveryError, OutboxItem
from pydantic import SecretStr

from bot.settings import EmailSettings, Settings
from webhook_receiver import SmtpSink, WebhookReceiver, poll, self_signed_tls

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
FAST = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "poll_seconds": 0.1, "lease_seconds": 10}
PLANTED_TEXT = ("the projector in room 12 shows no signal. My student Jamie Lee has her talk next, "
                "call me on 07700 900123 or write to jamie.lee@example.org")
PLANTED = ("Jamie", "Lee", "jamie.lee@example.org", "07700 900123", "900123")


@pytest.fixture
def make_runtime(settings: Settings, store) -> Iterator[Any]:
    """Runtimes with delivery settings over the test knowledge base; workers stopped afterwards."""
    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        s = Settings(data_dir=settings.data_dir, config_dir=CONFIG_DIR, outbox=FAST, **overrides)
        runtime = build_runtime(s, auto_starter=False)
        assert runtime.delivery is not None and runtime.delivery.worker.alive
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close(flush_seconds=2)


def message(text: str, *, platform: str = "slack", conversation: str = "C0CLASSRM1", thread: str | None = "1515449522.000016",
            user: str = "U2147483697", ref: PlatformRef | None = None) -> InboundMessage:
    return InboundMessage(platform=platform, conversation_id=conversation, thread_id=thread, user_id=user, text=text,
                          platform_ref=ref or PlatformRef(channel=conversation, message_ts=thread))


def delivered(runtime: Runtime, channel: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
    """Poll the outbox until `count` rows for `channel` are delivered."""
    outbox = runtime.delivery.outbox
    return poll(lambda: (rows := outbox.rows(status="delivered")) and
                len(r := [x for x in rows if x.channel == channel]) >= count and r,
                timeout, f"{count} delivered row(s) for {channel}")


# -- e-mail --------------------------------------------------------------------------------------

def test_helpdesk_ticket_arrives_by_email_masked_and_threaded(make_runtime):
    with SmtpSink() as smtp:
        runtime = make_runtime(email={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                      "from_addr": "Integration Coach <coach@school.example>",
                                      "helpdesk_to": "IT Helpdesk <helpdesk@school.example>"})
        reply = runtime.coach.handle(message(PLANTED_TEXT))
        assert reply.handoff is not None and reply.handoff.target == "helpdesk" and reply.handoff.created
        ticket = reply.handoff.ticket
        [mail] = smtp.wait_for(1)
        [row] = delivered(runtime, "email")
        assert mail["Subject"] == f"[Coach {ticket}] Projector in room 12 shows no signal"
        assert mail["Message-ID"] == f"<{row.key}@school.example>"
        assert mail["To"] == "helpdesk@school.example" and mail["X-Coach-Ticket"] == ticket
        assert smtp.recipients[0] == ["helpdesk@school.example"]
        body = mail.get_content()
        assert "Fault:" in body and "Room:      room 12" in body and "Device:    projector" in body
        assert "On screen: no signal" in body and "Transcript (names, e-mails, phones, addresses, student numbers and classes masked)" in body
        raw = mail.as_string()
        for planted in PLANTED:
            assert planted not in raw, planted
        assert "[NAME-" in body and "[PHONE-" in body and "[EMAIL-" in body

        # Details the teacher adds later go to the same ticket, as a threaded update.
        more = runtime.coach.handle(message("it's the Epson one and the light is blinking orange"))
        assert more.handoff is not None and more.handoff.ticket == ticket and not more.handoff.created
        first, update = smtp.wait_for(2)
        assert update["Subject"] == f"Re: {mail['Subject']}"
        assert update["In-Reply-To"] == mail["Message-ID"] == update["References"]
        assert update["Message-ID"] != mail["Message-ID"]
        assert "The teacher added: it's the Epson one and the light is blinking orange" in update.get_content()
        assert "Jamie" not in update.as_string()
        assert smtp.duplicates == 0 and len(smtp.messages) == 2


def test_email_over_starttls_with_auth(tmp_path):
    from adapters.delivery.email import EmailChannel

    try:
        tls, ca_file = self_signed_tls(tmp_path)
    except ImportError:
        pytest.skip("the cryptography package (to make a test certificate) is not installed")
    item = OutboxItem(id=1, key="coach-1-opened-1-email-abc", escalation_id=1, ticket="H-0001", event="opened", seq=1,
                      channel="email", attempt=1, created_at=datetime.now(timezone.utc), payload={"context": {
                          "escalation_id": 1, "ticket": "H-0001", "target": "helpdesk", "event": "opened",
                          "title": "Printer jammed", "summary": "Technical fault reported by a teacher.",
                          "urgency": "urgent", "fields": {"Fault": "printer jammed"}}})
    with SmtpSink(auth=("coach", "right-pass"), tls_context=tls, require_starttls=True) as smtp:
        good = EmailSettings(host="localhost", port=smtp.port, starttls=True, username="coach",
                             password="right-pass", ca_file=ca_file, helpdesk_to="it@school.example",
                             from_addr="coach@school.example")
        receipt = EmailChannel(good).deliver(item)
        [mail] = smtp.wait_for(1)
        assert smtp.authenticated == [True]
        assert receipt["message_id"] == mail["Message-ID"] == "<coach-1-opened-1-email-abc@school.example>"
        assert mail["Subject"] == "[Coach H-0001] URGENT: Printer jammed" and mail["Importance"] == "high"
        assert "STARTTLS" in EmailChannel(good).probe()

        wrong = good.model_copy(update={"password": SecretStr("wrong-pass-123")})
        with pytest.raises(DeliveryError) as failed:
            EmailChannel(wrong).deliver(item)
        assert failed.value.permanent and "535" in str(failed.value)
        assert "wrong-pass-123" not in str(failed.value)

        untrusted = good.model_copy(update={"ca_file": None})
        with pytest.raises(DeliveryError) as tls_failed:
            EmailChannel(untrusted).deliver(item)
        assert tls_failed.value.permanent and "CA_FILE" in str(tls_failed.value)
    assert len(smtp.messages) == 1


# -- webhook -------------------------------------------------------------------------------------

def test_webhook_failing_three_times_is_delivered_exactly_once(make_runtime):
    with WebhookReceiver(secret="hook-secret-1") as hook:
        hook.fail_first(3, status=500)
        runtime = make_runtime(webhook={"url": hook.url, "secret": "hook-secret-1"})
        reply = runtime.coach.handle(message("this isn't helping, can I talk to a real person please"))
        assert reply.handoff is not None and reply.handoff.target == "integrator"
        [body] = hook.wait_for(1)
        [row] = delivered(runtime, "webhook")
        assert [r.answered for r in hook.requests] == [500, 500, 500, 200]
        assert all(r.signature_ok for r in hook.requests)
        assert {r.key for r in hook.requests} == {row.key}  # the same key on every retry
        assert len({r.timestamp for r in hook.requests}) >= 1 and hook.duplicates == 0
        assert row.attempts == 4 and row.last_error is None
        assert body["type"] == "handoff.opened" and body["ticket"] == reply.handoff.ticket
        assert body["context"]["why"] == "the teacher asked for a person"
        assert body["context"]["fields"]["Coach already asked"] == "nothing yet"


def test_webhook_with_the_wrong_secret_stops_for_an_operator(make_runtime):
    with WebhookReceiver(secret="the-real-secret") as hook:
        runtime = make_runtime(webhook={"url": hook.url, "secret": "not-the-secret"})
        runtime.coach.handle(message("can I talk to a person please"))
        outbox = runtime.delivery.outbox
        [row] = poll(lambda: outbox.rows(status="failed"), 10, "the row to fail")
        assert row.last_error == "webhook answered HTTP 401" and row.attempts == 1
        assert [r.answered for r in hook.requests] == [401] and hook.processed == {}


# -- Slack: the integrators' channel, Claim / Resolve, and the teacher told ----------------------------

def test_slack_channel_claim_and_resolve_tell_the_teacher(make_runtime):
    from slack_api_server import SlackAPIServer

    with SlackAPIServer() as slack:
        runtime = make_runtime(slack={"bot_token": "xoxb-test-token", "integrator_channel": "C0INTEGRAT",
                                      "api_url": slack.base_url},
                               access={"integrator": {"slack": ["U0INTEGRAT", "U0SOMEONE"]}})
        thread = "1515449522.000016"
        reply = runtime.coach.handle(message("can I talk to a real person please", thread=thread))
        ticket, eid = reply.handoff.ticket, runtime.coach.escalations.get_by_ticket(reply.handoff.ticket).id
        [post] = slack.wait_for("chat.postMessage", where=lambda c: c.body.get("channel") == "C0INTEGRAT")
        buttons = {e["action_id"]: e["value"] for b in post.body["blocks"] if b["type"] == "actions" for e in b["elements"]}
        assert buttons == {"handoff_claim": str(eid), "handoff_resolve": str(eid)}
        assert ticket in post.body["text"] and ticket in post.body["blocks"][0]["text"]["text"]
        [row] = delivered(runtime, "slack_channel")
        assert post.body["metadata"]["event_payload"]["key"] == row.key
        ts = row.receipt["ts"]

        sam = Actor(platform="slack", user_id="U0INTEGRAT", name="Sam")
        result = runtime.coach.escalation_action(eid, "claim", sam)
        text = result.channel_text
        assert result.changed and "Claimed by Sam" in text and ticket in text
        second = runtime.coach.escalation_action(eid, "claim", Actor(platform="slack", user_id="U0SOMEONE"))
        assert second.outcome is Outcome.UNCHANGED  # second click
        [notice] = slack.wait_for("chat.postMessage", where=lambda c: c.body.get("channel") == "C0CLASSRM1")
        assert notice.body["thread_ts"] == thread
        assert "Sam" in notice.body["text"] and "picked up your request" in notice.body["text"] and ticket in notice.body["text"]
        [redraw] = slack.wait_for("chat.update")
        assert redraw.body["ts"] == ts
        assert [e["action_id"] for b in redraw.body["blocks"] if b["type"] == "actions" for e in b["elements"]] == \
            ["handoff_resolve"]

        assert runtime.coach.escalation_action(eid, "resolve", sam).changed
        notices = slack.wait_for("chat.postMessage", 2, where=lambda c: c.body.get("channel") == "C0CLASSRM1")
        assert "marked resolved by Sam" in notices[1].body["text"]
        redraws = slack.wait_for("chat.update", 2)
        assert not [b for b in redraws[1].body["blocks"] if b["type"] == "actions"]
        assert runtime.coach.escalation_action(eid, "resolve", sam).outcome is Outcome.UNCHANGED
        assert len(delivered(runtime, "teacher:slack", 2)) == 2
        assert runtime.coach.escalations.get(eid).status == "resolved"


def test_slack_retry_finds_its_earlier_post_instead_of_posting_twice():
    from adapters.delivery.slack_channel import SlackChannel
    from slack_api_server import SlackAPIServer

    class WithHistory(SlackAPIServer):
        """The stand-in plus conversations.history with message metadata, as Slack returns it."""

        def _m_chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
            data = super()._m_chat_postMessage(body)
            self.messages[(str(body.get("channel")), data["ts"])]["metadata"] = body.get("metadata")
            return data

        def _m_conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
            channel = body.get("channel")
            return {"messages": [m for (c, _), m in self.messages.items() if c == channel], "has_more": False}

    context = {"escalation_id": 7, "ticket": "I-0007", "target": "integrator", "event": "opened", "title": "A person",
               "summary": "asked", "status": "open"}

    def item(key: str, attempt: int) -> OutboxItem:
        return OutboxItem(id=1, key=key, escalation_id=7, ticket="I-0007", event="opened", seq=1,
                          channel="slack_channel", attempt=attempt, created_at=datetime.now(timezone.utc),
                          payload={"context": context})

    with WithHistory() as slack:
        channel = SlackChannel("xoxb-t", "C0INTEGRAT", api_url=slack.base_url)
        first = channel.deliver(item("key-a", 1))  # Slack took it; pretend the process died before recording it
        again = channel.deliver(item("key-a", 2))
        assert again == {"channel": "C0INTEGRAT", "ts": first["ts"], "found": True}
        assert len(slack.calls("chat.postMessage")) == 1 and len(slack.calls("conversations.history")) == 1
        other = channel.deliver(item("key-b", 2))  # a retry of something never posted does post
        assert other["ts"] != first["ts"] and len(slack.calls("chat.postMessage")) == 2


# -- Teams: the integrators' channel and the teacher, proactively ----------------------------------

@pytest.fixture
def connector() -> Iterator[Any]:
    from bot_connector_server import serving_in_thread

    with serving_in_thread() as server:
        yield server


def test_teams_channel_and_teacher_notices(make_runtime, connector):
    channel = "19:integrators@thread.tacv2"
    runtime = make_runtime(teams_channel={"service_url": connector.url, "conversation_id": channel},
                           access={"integrator": {"teams": ["aad-sam"]}})
    reference = {"channelId": "msteams", "serviceUrl": connector.url, "bot": {"id": "28:coach-bot", "name": "Coach"},
                 "user": {"id": "29:ana", "name": "Ana"},
                 "conversation": {"id": "a:1personal", "conversationType": "personal", "tenantId": "t1"}}
    teams_msg = message("can I talk to a real person please", platform="teams", conversation="a:1personal",
                        thread=None, user="29:ana",
                        ref=PlatformRef(service_url=connector.url, reference=reference)).model_copy(
                            update={"user_name": "Ana Teacher"})
    reply = runtime.coach.handle(teams_msg)
    ticket = reply.handoff.ticket
    [row] = delivered(runtime, "teams_channel")
    [post] = [r for r in connector.messages(channel)]
    assert ticket in post.body["text"] and "asked for a person" in post.body["text"]
    assert row.payload["context"]["teacher"] == "Ana Teacher (teams user 29:ana)"

    # A second request in the same conversation adds to it: a reply in the handoff's own thread.
    more = runtime.coach.handle(teams_msg.model_copy(update={"text": "please, I'd rather speak to a human"}))
    assert more.handoff.ticket == ticket and not more.handoff.created
    delivered(runtime, "teams_channel", 2)
    [update] = connector.messages(f"{channel};messageid={row.receipt['activity_id']}")
    assert "the teacher added: please, I'd rather speak to a human" in update.body["text"]

    eid = runtime.coach.escalations.get_by_ticket(ticket).id
    assert runtime.coach.escalation_action(eid, "claim", Actor(platform="teams", user_id="aad-sam", name="Sam")).changed
    delivered(runtime, "teacher:teams")
    [told] = connector.messages("a:1personal")
    assert "Good news: Sam" in told.body["text"] and ticket in told.body["text"]
