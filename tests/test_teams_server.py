"""The running Teams endpoint: the real aiohttp app and CloudAdapter on a loopback port.

Activities are posted as Teams sends them, with `serviceUrl` pointing at a loopback Bot
Connector stand-in (tests/bot_connector_server.py) that records what the bot sends back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.teams.proactive import UnknownConversation
from adapters.teams.references import ReferenceStore
from adapters.teams.server import NOTIFIER_KEY, RUNTIME_KEY, WORKER_KEY, build_app
from bot.handoff.escalations import EscalationRow
from bot.settings import TeamsSettings
from bot.state.memory import TurnRow
from tests.bot_connector_server import (
    BotConnectorServer,
    Recorded,
    TeamsActivities,
    assert_scenario_card,
    card_element,
    assert_source_row,
    source_elements,
)
from tests.scenarios import FOLLOW_UP, SCENARIOS

APP_ID = "3f2b6a1e-1234-4cde-9abc-0123456789ab"


@dataclass
class Endpoint:
    url: str
    app: web.Application
    connector: BotConnectorServer
    acts: TeamsActivities
    session: aiohttp.ClientSession

    async def post(self, data, *, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        kwargs = {"data": data} if isinstance(data, (str, bytes)) else {"json": data}
        async with self.session.post(f"{self.url}/api/messages", headers=headers, **kwargs) as response:
            await response.read()
            return response


async def start(runtime, connector: BotConnectorServer) -> tuple[web.AppRunner, str, web.Application]:
    app = build_app(runtime)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}", app


@pytest.fixture
async def endpoint(shared_runtime) -> AsyncIterator[Endpoint]:
    async with BotConnectorServer() as connector, aiohttp.ClientSession() as session:
        runner, url, app = await start(shared_runtime, connector)
        try:
            yield Endpoint(url, app, connector, TeamsActivities(connector.url), session)
        finally:
            await runner.cleanup()


def turns(runtime, memory_key: str | None = None) -> int:
    with runtime.db.session() as s:
        query = select(func.count()).select_from(TurnRow)
        if memory_key is not None:
            query = query.where(TurnRow.memory_key == memory_key)
        return s.scalar(query)


def one_card(records: list[Recorded]) -> dict:
    messages = [r for r in records if r.type == "message"]
    assert len(messages) == 1, [(r.kind, r.type, r.body.get("text")) for r in records]
    assert len(messages[0].cards) == 1
    return messages[0].cards[0]


@pytest.mark.parametrize("where", ["personal", "channel"])
async def test_every_scenario_over_http(endpoint, shared_runtime, where):
    entries = shared_runtime.store.entries()
    for scenario in SCENARIOS:
        if where == "personal":
            data = endpoint.acts.personal(scenario.text, conversation=f"a:1http-{scenario.name.replace(' ', '-')}")
        else:
            data = endpoint.acts.channel(scenario.text, channel="19:http@thread.tacv2")
        response = await endpoint.post(data)
        assert response.status == 202, scenario.name  # recorded; the answer follows
        conversation = data["conversation"]["id"]
        sent = await endpoint.connector.wait_for(lambda r, c=conversation: r.conversation_id == c and r.type == "message")
        card = one_card([r for r in endpoint.connector.requests if r.conversation_id == conversation])
        assert_scenario_card(card, scenario, entries)
        # Sent as a reply to the teacher's message, so a channel answer lands in its reply chain.
        assert (sent[0].kind, sent[0].activity_id) == ("reply", data["id"])
        assert sent[0].body["replyToId"] == data["id"]
        assert sent[0].body["from"]["id"] == "28:coach-bot" and sent[0].body["recipient"]["id"] == "29:ana"


async def test_follow_up_over_http_in_a_reply_chain(endpoint, shared_runtime):
    first, second, expected = FOLLOW_UP
    root = endpoint.acts.channel(first, channel="19:follow@thread.tacv2")
    assert (await endpoint.post(root)).status == 202
    reply = endpoint.acts.channel(second, channel="19:follow@thread.tacv2", thread=root["id"])
    assert (await endpoint.post(reply)).status == 202
    chain = root["conversation"]["id"]
    records = await endpoint.connector.wait_for(lambda r: r.conversation_id == chain and r.type == "message", 2)
    assert_source_row(source_elements(records[1].cards[0])[0], shared_runtime.store.entries()[expected])
    assert turns(shared_runtime, f"teams:19:follow@thread.tacv2:{root['id']}") == 2


async def test_card_clicks_over_http_escalate_once_and_update_the_card(endpoint, shared_runtime):
    question = endpoint.acts.personal(SCENARIOS[0].text, conversation="a:1http-click")
    await endpoint.post(question)
    [sent] = await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1http-click" and r.type == "message")
    await endpoint.app[WORKER_KEY].idle()  # the card is remembered right after it is sent
    turn_id = sent.cards[0]["actions"][0]["data"]["turn_id"]
    click = endpoint.acts.submit(question, action="talk_to_person", turn_id=turn_id, reply_to="whatever")
    assert (await endpoint.post(click)).status == 201
    again = endpoint.acts.submit(question, action="talk_to_person", turn_id=turn_id, reply_to="whatever")
    assert (await endpoint.post(again)).status == 201

    updates = await endpoint.connector.wait_for(lambda r: r.kind == "update" and r.conversation_id == "a:1http-click")
    messages = [r for r in endpoint.connector.requests if r.conversation_id == "a:1http-click" and r.type == "message"
                and r.kind != "update"]
    assert len(messages) == 2  # the coaching card and one handoff card; the second click says nothing
    facts = {f["title"]: f["value"] for f in card_element(messages[1].cards[0], "handoff")["facts"]}
    assert facts["Ticket"].startswith("I-")
    assert len(updates) == 1
    # The update goes to the id the Bot Connector gave the coaching card when it was sent.
    assert updates[0].activity_id == ReferenceStore(shared_runtime.db).card(turn_id).activity_id
    assert updates[0].activity_id.startswith("reply-")
    assert "actions" not in updates[0].cards[0]
    assert card_element(updates[0].cards[0], "chosen")["text"].startswith("✓ Talk to a person")
    with shared_runtime.db.session() as s:
        count = s.scalar(select(func.count()).select_from(EscalationRow)
                         .where(EscalationRow.memory_key == "teams:a:1http-click"))
    assert count == 1


async def test_invoke_action_over_http_returns_the_card(endpoint):
    question = endpoint.acts.personal(SCENARIOS[1].text, conversation="a:1http-invoke")
    await endpoint.post(question)
    [sent] = await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1http-invoke")
    await endpoint.app[WORKER_KEY].idle()
    turn_id = sent.cards[0]["actions"][0]["data"]["turn_id"]
    async with endpoint.session.post(f"{endpoint.url}/api/messages", json=endpoint.acts.invoke_action(
            question, action="helped", turn_id=turn_id)) as response:
        body = await response.json()
    assert response.status == 200
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert card_element(body["value"], "chosen")["text"].startswith("✓ This helped")


@pytest.mark.parametrize("body, content_type, status, reason", [
    ("{not json", "application/json", 400, "malformed activity JSON"),
    ("[1, 2, 3]", "application/json", 400, "JSON object"),
    ('{"text": "hi", "serviceUrl": "http://127.0.0.1:9/"}', "application/json", 400, "'type'"),
    ('{"type": "message", "text": "hi"}', "application/json", 400, "serviceUrl"),
    ("type=message&text=hi", "application/x-www-form-urlencoded", 415, "application/json"),
])
async def test_bad_input_gets_a_reason_and_never_reaches_the_core(endpoint, shared_runtime, body, content_type,
                                                                  status, reason):
    before = turns(shared_runtime)
    async with endpoint.session.post(f"{endpoint.url}/api/messages", data=body,
                                     headers={"Content-Type": content_type}) as response:
        answer = await response.json()
    assert response.status == status and reason in answer["error"]
    assert turns(shared_runtime) == before
    assert endpoint.connector.requests == []


async def test_bad_field_types_get_400(endpoint, shared_runtime):
    data = endpoint.acts.personal("the projector is broken", conversation="a:1http-bad")
    data["text"] = {"not": "a string"}
    before = turns(shared_runtime)
    response = await endpoint.post(data)
    assert response.status == 400
    assert turns(shared_runtime) == before and endpoint.connector.requests == []


async def test_unknown_activity_type_is_acknowledged_and_ignored(endpoint, shared_runtime):
    data = endpoint.acts.personal("hello", conversation="a:1http-unknown")
    data["type"] = "somethingNew"
    before = turns(shared_runtime)
    response = await endpoint.post(data)
    assert response.status in (200, 201)
    assert turns(shared_runtime) == before
    assert endpoint.connector.requests == []


async def test_welcome_over_http(endpoint, shared_runtime):
    before = turns(shared_runtime)
    assert (await endpoint.post(endpoint.acts.bot_added(conversation="a:1http-hello"))).status == 201
    [sent] = await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1http-hello")
    assert "Integration Coach" in sent.body["text"]
    assert turns(shared_runtime) == before


async def test_healthz_reports_emulator_mode(endpoint):
    async with endpoint.session.get(f"{endpoint.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "platform": "teams", "mode": "emulator"}


def test_emulator_mode_warns_loudly(shared_runtime, caplog):
    with caplog.at_level(logging.WARNING, logger="adapters.teams.server"):
        build_app(shared_runtime)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("LOCAL EMULATOR MODE" in r.getMessage() and "NOT authenticated" in r.getMessage() for r in warnings)


async def test_authenticated_mode_refuses_a_request_without_a_token(shared_runtime, caplog):
    secret = "s3cr3t-value-never-logged"
    settings = shared_runtime.settings.model_copy(
        update={"teams": TeamsSettings(app_id=APP_ID, app_password=SecretStr(secret))})
    runtime = dataclasses.replace(shared_runtime, settings=settings)
    caplog.set_level(logging.DEBUG)
    async with BotConnectorServer() as connector, aiohttp.ClientSession() as session:
        runner, url, _app = await start(runtime, connector)
        try:
            acts = TeamsActivities(connector.url)
            before = turns(runtime)
            async with session.post(f"{url}/api/messages", json=acts.personal(SCENARIOS[2].text)) as response:
                answer = await response.json()
            assert response.status == 401 and "unauthorized" in answer["error"]
            async with session.post(f"{url}/api/messages", data="{not json",
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 401  # without a token, not even a parse error is reported
            for header in ("Bearer not-a-jwt", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"):
                async with session.post(f"{url}/api/messages", json=acts.personal(SCENARIOS[2].text),
                                        headers={"Authorization": header}) as response:
                    assert response.status == 401, header
            async with session.get(f"{url}/healthz") as health:
                assert (await health.json())["mode"] == "authenticated"
            assert turns(runtime) == before
            assert connector.requests == []
        finally:
            await runner.cleanup()
    assert not any("EMULATOR" in r.getMessage() for r in caplog.records)
    assert all(secret not in r.getMessage() for r in caplog.records)


async def test_a_failing_turn_apologises_instead_of_500(endpoint, shared_runtime):
    class BrokenCoach:
        def handle(self, message):
            raise RuntimeError("composer exploded")

        def handle_action(self, event):
            raise RuntimeError("composer exploded")

    broken = dataclasses.replace(shared_runtime, coach=BrokenCoach())
    runner, url, _ = await start(broken, endpoint.connector)
    try:
        async with endpoint.session.post(f"{url}/api/messages", json=endpoint.acts.personal(
                "hello", conversation="a:1http-broken")) as response:
            assert response.status == 202
        [sent] = await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1http-broken")
        assert sent.body["text"].startswith("Sorry, something went wrong")
    finally:
        await runner.cleanup()


async def test_proactive_messages_reach_stored_conversations(endpoint):
    notifier = endpoint.app[NOTIFIER_KEY]
    await endpoint.post(endpoint.acts.personal("thanks so much!", conversation="a:1http-later"))
    channel_post = endpoint.acts.channel("thanks so much!", channel="19:integrators@thread.tacv2", user="bea",
                                         user_name="Bea Integrator")
    await endpoint.post(channel_post)
    await endpoint.connector.wait_for(lambda r: r.type == "message", 2)
    endpoint.connector.requests.clear()

    # Tell a teacher, in the conversation the escalation's memory_key names.
    sent_id = await notifier.send_text("teams:a:1http-later", "Bea from the integration team has picked this up.")
    [told] = await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1http-later")
    assert told.kind == "send" and told.path == "/v3/conversations/a:1http-later/activities"
    assert told.body["text"].startswith("Bea from the integration team") and told.body["recipient"]["id"] == "29:ana"
    assert sent_id and sent_id.startswith("sent-")

    # Announce a handoff as a new post in the integrators' channel, from a worker thread.
    await asyncio.to_thread(notifier.send_text_sync, "teams:19:integrators@thread.tacv2", "New handoff I-0001")
    [announced] = await endpoint.connector.wait_for(lambda r: r.conversation_id == "19:integrators@thread.tacv2")
    assert announced.kind == "send" and announced.body["text"] == "New handoff I-0001"

    with pytest.raises(UnknownConversation):
        await notifier.send_text("teams:a:1nobody", "hello")


async def test_send_to_user_opens_a_personal_chat_once(endpoint):
    notifier = endpoint.app[NOTIFIER_KEY]
    await endpoint.post(endpoint.acts.channel("thanks so much!", channel="19:room@thread.tacv2", user="cai",
                                              user_name="Cai Teacher"))
    await endpoint.connector.wait_for(lambda r: r.type == "message")
    endpoint.connector.requests.clear()

    await notifier.send_to_user("29:cai", "A person has picked up your request.")
    [create] = await endpoint.connector.wait_for(lambda r: r.kind == "create")
    assert create.path == "/v3/conversations"
    assert [m["id"] for m in create.body["members"]] == ["29:cai"] and create.body["isGroup"] is False
    assert create.body["channelData"] == {"tenant": {"id": "tenant-1"}}
    [message] = await endpoint.connector.wait_for(lambda r: r.kind == "send")
    assert message.conversation_id.startswith("a:personal-") and message.body["text"].startswith("A person")

    await notifier.send_to_user("29:cai", "Second note.")
    await endpoint.connector.wait_for(lambda r: r.kind == "send", 2)
    assert len([r for r in endpoint.connector.requests if r.kind == "create"]) == 1  # the chat is reused
    stored = ReferenceStore(endpoint.app[RUNTIME_KEY].db)
    assert stored.get(f"teams:{message.conversation_id}")["conversation"]["conversationType"] == "personal"
