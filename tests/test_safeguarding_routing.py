"""A safeguarding concern goes, in full, to the safeguarding lead alone; shared channels learn only that it exists.

Real servers on loopback: an SMTP sink (aiosmtpd), the Slack Web API stand-in, a webhook
receiver that checks signatures, and the Bot Connector stand-in for Teams.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.wiring import Runtime, build_runtime
from bot.models import InboundMessage, PlatformRef, Route
from bot.settings import Settings
from webhook_receiver import SmtpSink, WebhookReceiver, poll

from conftest import CONFIG_DIR

FAST = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "poll_seconds": 0.1, "lease_seconds": 10}
DISCLOSURE = ("My student Maya in 4B told me at break that her stepdad hits her when he has been drinking, "
              "and she showed me bruises on her arms.")
LATER = "She also said it happened again last night."
# What a shared channel must never see: the account, the child, the teacher.
DETAIL = ("stepdad", "bruises", "drinking", "Maya", "4B", "happened again", "U0TEACHER", "C0CLASSRM1")
SLACK_TEAM = {"bot_token": "xoxb-test-token", "integrator_channel": "C0INTEGRAT"}


@pytest.fixture
def make_runtime(settings: Settings, store) -> Iterator[Any]:
    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        s = Settings(data_dir=settings.data_dir, config_dir=CONFIG_DIR, outbox=FAST, **overrides)
        runtime = build_runtime(s, auto_starter=False)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close(flush_seconds=2)


def message(text: str) -> InboundMessage:
    return InboundMessage(platform="slack", conversation_id="C0CLASSRM1", thread_id="1515449522.000016",
                          user_id="U0TEACHER", text=text,
                          platform_ref=PlatformRef(channel="C0CLASSRM1", message_ts="1515449522.000016"))


def delivered(runtime: Runtime, channel: str, count: int = 1) -> list[Any]:
    outbox = runtime.delivery.outbox
    return poll(lambda: len(r := [x for x in outbox.rows(status="delivered") if x.channel == channel]) >= count and r,
                10.0, f"{count} delivered row(s) for {channel}")


def leaked(text: str) -> list[str]:
    # Whole words only: a request body holds hex ids, where "4b" turns up by chance.
    return [d for d in DETAIL if re.search(rf"(?<![0-9a-z]){re.escape(d)}(?![0-9a-z])", text, re.IGNORECASE)]


def test_the_lead_gets_the_full_account_and_every_shared_channel_one_line(make_runtime):
    from slack_api_server import SlackAPIServer

    with SmtpSink() as smtp, SlackAPIServer() as slack, WebhookReceiver(secret="hook-secret") as hook:
        runtime = make_runtime(
            slack={**SLACK_TEAM, "api_url": slack.base_url},
            email={"host": "127.0.0.1", "port": smtp.port, "starttls": False, "from_addr": "coach@school.example",
                   "integrator_to": "integrators@school.example"},
            webhook={"url": hook.url, "secret": "hook-secret"},
            safeguarding={"contact_name": "Ms Okafor, our DSL", "target": {"email": "dsl@school.example",
                                                                          "slack": "U0DSL"}})
        reply = runtime.coach.handle(message(DISCLOSURE))
        assert reply.route is Route.INTEGRATOR and reply.handoff is not None
        ticket = reply.handoff.ticket
        # The teacher is told exactly who was told, and how.
        assert f"I've sent what you told me to Ms Okafor, our DSL by e-mail and on Slack (ref {ticket})" in reply.text
        assert "alerted" not in reply.text and "no one has been told" not in reply.text

        delivered(runtime, "safeguarding_email")
        delivered(runtime, "safeguarding_slack")
        delivered(runtime, "slack_channel")
        delivered(runtime, "email")
        [body] = hook.wait_for(1)
        mails = {tuple(m["To"].split(", ")): m for m in smtp.wait_for(2)}

        # The lead: everything, unmasked, in their own inbox and their own Slack conversation.
        lead_mail = mails[("dsl@school.example",)]
        content = lead_mail.get_content()
        assert "stepdad" in content and "Maya" in content and "U0TEACHER" in content
        [lead_post] = slack.calls("chat.postMessage", lambda c: c.body.get("channel") == "U0DSL")
        assert "stepdad" in json.dumps(lead_post.body) and "Maya" in json.dumps(lead_post.body)

        # Everyone else: that a concern went to the lead, and nothing of it.
        line = f"A safeguarding concern was passed to the safeguarding lead ({ticket})."
        team_mail = mails[("integrators@school.example",)]
        assert line in team_mail.get_content() and leaked(team_mail.as_string()) == []
        [team_post] = slack.calls("chat.postMessage", lambda c: c.body.get("channel") == "C0INTEGRAT")
        assert line in json.dumps(team_post.body) and leaked(json.dumps(team_post.body)) == []
        assert not [b for b in team_post.body["blocks"] if b["type"] == "actions"]  # the lead acts, not the channel
        assert body["context"]["summary"] == line and leaked(json.dumps(body)) == []
        assert hook.requests[0].signature_ok

        # What the teacher adds later reaches the lead only.
        more = runtime.coach.handle(message(LATER))
        assert more.handoff is not None and more.handoff.ticket == ticket
        delivered(runtime, "safeguarding_email", 2)
        delivered(runtime, "safeguarding_slack", 2)
        assert "happened again" in smtp.wait_for(3)[-1].get_content()
        slack.settle()
        shared = [json.dumps(c.body) for c in slack.requests if c.body.get("channel") != "U0DSL"]
        shared += [json.dumps(r.body) for r in hook.requests]
        shared += [m.as_string() for m in smtp.messages if "dsl@school.example" not in m["To"]]
        assert [x for s in shared for x in leaked(s)] == []
        assert len(hook.requests) == 1 and len(smtp.messages) == 3


def test_with_no_lead_configured_the_teacher_is_told_nobody_was_and_to_go_in_person(make_runtime):
    from slack_api_server import SlackAPIServer

    with SlackAPIServer() as slack:
        runtime = make_runtime(slack={**SLACK_TEAM, "api_url": slack.base_url})
        assert runtime.delivery is not None  # the integrators' channel is configured, the lead is not
        reply = runtime.coach.handle(message(DISCLOSURE))
        ticket = reply.handoff.ticket
        assert "no one has been told yet" in reply.text
        assert "please go to the designated safeguarding lead now, in person" in reply.text
        assert "I've sent" not in reply.text and "alerted" not in reply.text
        delivered(runtime, "slack_channel")
        [post] = slack.calls("chat.postMessage", lambda c: c.body.get("channel") == "C0INTEGRAT")
        text = json.dumps(post.body)
        assert f"A safeguarding concern was raised ({ticket}). No safeguarding-lead target is configured" in text
        assert leaked(text) == []


def test_with_no_delivery_at_all_nobody_is_claimed_to_be_told(make_runtime):
    runtime = make_runtime()
    assert runtime.delivery is None
    reply = runtime.coach.handle(message(DISCLOSURE))
    assert "no one has been told yet" in reply.text and "in person" in reply.text
    incident = runtime.coach.handle(InboundMessage(
        platform="console", conversation_id="dp", user_id="t2",
        text="I accidentally emailed the whole class spreadsheet with every student's SEN notes to all parents"))
    assert incident.route is Route.INTEGRATOR
    assert "no one has been told yet" in incident.text and "alerted" not in incident.text


@pytest.fixture
def connector() -> Iterator[Any]:
    from bot_connector_server import BotConnectorServer

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bot-connector", daemon=True)
    thread.start()
    server = BotConnectorServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_teams_lead_chat_gets_the_account_and_the_teams_channel_one_line(make_runtime, connector):
    channel, lead_chat = "19:integrators@thread.tacv2", "19:dsl-private@thread.tacv2"
    runtime = make_runtime(teams_channel={"service_url": connector.url, "conversation_id": channel},
                           safeguarding={"target": {"teams": lead_chat}})
    reply = runtime.coach.handle(message(DISCLOSURE))
    ticket = reply.handoff.ticket
    assert "by e-mail" not in reply.text and f"in Teams (ref {ticket})" in reply.text
    delivered(runtime, "safeguarding_teams")
    delivered(runtime, "teams_channel")
    lead = json.dumps([r.body for r in connector.messages(lead_chat)])
    assert "stepdad" in lead and "Maya" in lead
    shared = json.dumps([r.body for r in connector.messages(channel)])
    assert f"passed to the safeguarding lead ({ticket})" in shared and leaked(shared) == []
    assert '"Claim"' not in shared


def test_an_unclaimed_concern_goes_to_the_deputy_once_and_a_claimed_one_does_not(make_runtime):
    from datetime import timedelta

    from bot.state.database import utcnow

    with SmtpSink() as smtp:
        email = {"host": "127.0.0.1", "port": smtp.port, "starttls": False, "from_addr": "coach@school.example"}
        people = {"target": {"email": "dsl@school.example"}, "deputy": {"email": "deputy@school.example"}}
        # The running worker sends it on its own once the (here very short) time has passed.
        runtime = make_runtime(email=email, safeguarding={**people, "deputy_after_minutes": 0.01})
        runtime.coach.handle(message(DISCLOSURE))
        mails = poll(lambda: len(smtp.messages) >= 2 and smtp.messages, 10.0, "the lead's and the deputy's e-mails")
        [deputy] = [m for m in mails if m["To"] == "deputy@school.example"]
        body = deputy.get_content()
        assert "stepdad" in body and "Maya" in body and "as the deputy safeguarding lead" in body
        assert [m["To"] for m in mails].count("dsl@school.example") == 1
        runtime.close(flush_seconds=1)

        # Thirty minutes: an unclaimed concern goes on; a claimed one does not; neither twice.
        runtime = make_runtime(email=email, safeguarding={**people, "deputy_after_minutes": 30})
        listener = runtime.delivery.listener
        waiting = runtime.coach.handle(InboundMessage(platform="slack", conversation_id="C0THIRD", user_id="U0T3",
                                                     text=DISCLOSURE)).handoff.ticket
        claimed = runtime.coach.handle(InboundMessage(platform="slack", conversation_id="C0OTHER", user_id="U0T2",
                                                     text=DISCLOSURE)).handoff.ticket
        esc = runtime.coach.escalations
        esc.claim(esc.get_by_ticket(claimed).id, "cli:dsl", "Ms Okafor")
        assert listener.escalate_unclaimed(now=utcnow() + timedelta(minutes=29)) == 0
        assert listener.escalate_unclaimed(now=utcnow() + timedelta(minutes=31)) == 1
        assert listener.escalate_unclaimed(now=utcnow() + timedelta(minutes=45)) == 0
        rows = runtime.delivery.outbox.rows()
        to_deputy = [r.ticket for r in rows if r.channel == "safeguarding_deputy_email"]
        assert to_deputy.count(waiting) == 1 and claimed not in to_deputy
