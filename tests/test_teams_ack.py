"""Teams messages are acked at once and answered afterwards from the inbound queue.

The real aiohttp app and CloudAdapter on a loopback port; the answer goes out through
`continue_conversation` to the loopback Bot Connector stand-in (tests/bot_connector_server.py).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from botbuilder.schema import Activity
from sqlalchemy import func, select

from adapters.teams import translate
from adapters.teams.server import WORKER_KEY, build_app
from adapters.teams.worker import inbound_key, queued_payload
from bot.compose.templates import CoachingRequest, Composition, TemplateComposer
from bot.handoff.escalations import EscalationRow
from bot.state.database import StateError, utcnow
from bot.state.inbound import DONE, PENDING, PROCESSING, InboundQueue
from bot.state.memory import TurnRow
from tests.bot_connector_server import BotConnectorServer, TeamsActivities, card_element
from tests.scenarios import SCENARIOS

ACK_LIMIT_SECONDS = 2.0


class HeldComposer:
    """The template composer, held until the test lets it go: a turn as slow as the test wants."""

    name = "held"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.inner = TemplateComposer()

    def compose(self, request: CoachingRequest) -> Composition:
        self.calls += 1
        self.entered.set()
        if not self.release.wait(30):
            raise TimeoutError("the test never released the composer")
        return self.inner.compose(request)


@dataclass
class Endpoint:
    url: str
    app: web.Application
    connector: BotConnectorServer
    acts: TeamsActivities
    session: aiohttp.ClientSession

    async def post(self, data: dict) -> tuple[int, float]:
        """POST the activity; the status and how long the HTTP answer took."""
        started = time.monotonic()
        async with self.session.post(f"{self.url}/api/messages", json=data) as response:
            await response.read()
            return response.status, time.monotonic() - started


@pytest.fixture
async def serve(runtime):
    """Start the Teams app for `runtime` on loopback; yields a factory taking build_app's options."""
    runners: list[web.AppRunner] = []

    async with BotConnectorServer() as connector, aiohttp.ClientSession() as session:

        async def start(**options: float) -> Endpoint:
            app = build_app(runtime, **options)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            await web.SockSite(runner, sock).start()
            return Endpoint(f"http://127.0.0.1:{sock.getsockname()[1]}", app, connector,
                            TeamsActivities(connector.url), session)

        try:
            yield start
        finally:
            for runner in runners:
                await runner.cleanup()


def _turns(runtime, memory_key: str) -> int:
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(TurnRow).where(TurnRow.memory_key == memory_key))


def _escalations(runtime, memory_key: str) -> list[EscalationRow]:
    with runtime.db.session() as s:
        return list(s.scalars(select(EscalationRow).where(EscalationRow.memory_key == memory_key)))


async def test_the_ack_comes_before_a_slow_turn_and_the_answer_once_after(serve, runtime):
    held = HeldComposer()
    runtime.coach.composer = held
    endpoint = await serve()
    data = endpoint.acts.personal(SCENARIOS[0].text, conversation="a:1ack-slow")

    status, took = await endpoint.post(data)
    assert status == 202 and took < ACK_LIMIT_SECONDS, (status, took)
    assert await asyncio.to_thread(held.entered.wait, 10), "the worker never reached the composer"
    # The Bot Framework delivering the same activity again (it thought the first timed out).
    status, took = await endpoint.post(data)
    assert status == 200 and took < ACK_LIMIT_SECONDS, (status, took)
    # Still composing: "typing" goes out through the proactive path, the answer does not yet.
    typing = await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1ack-slow" and r.type == "typing")
    assert typing[0].kind == "reply" and typing[0].activity_id == data["id"]
    assert endpoint.connector.messages("a:1ack-slow") == []

    held.release.set()
    [answer] = await endpoint.connector.wait_for(
        lambda r: r.conversation_id == "a:1ack-slow" and r.type == "message")
    await endpoint.app[WORKER_KEY].idle()
    # A reply to the teacher's message, as inside the request before, carrying the coaching card.
    assert (answer.kind, answer.activity_id, answer.body["replyToId"]) == ("reply", data["id"], data["id"])
    assert answer.body["from"]["id"] == "28:coach-bot" and answer.body["recipient"]["id"] == "29:ana"
    assert card_element(answer.cards[0], "reply")["text"].strip()
    row = InboundQueue(runtime.db).get(inbound_key(Activity().deserialize(data)))
    assert row.status == DONE and row.answer_ts.startswith("reply-")  # the id the Bot Connector gave it

    # Delivered once more after it was answered: acknowledged, not answered again.
    status, _ = await endpoint.post(data)
    assert status == 200
    await asyncio.sleep(0.3)
    await endpoint.app[WORKER_KEY].idle()
    assert len(endpoint.connector.messages("a:1ack-slow")) == 1
    assert held.calls == 1 and _turns(runtime, "teams:a:1ack-slow") == 1


async def test_a_backlog_waits_unclaimed_and_without_typing_while_the_threads_compose(serve, runtime):
    # Claimed only when a thread is free: a waiting message's lease cannot run out while it waits
    # (another process would answer it again), and the loop sends no typing indicators for answers
    # nobody is composing, so it stays free to acknowledge (benchmarks/load.py: Teams ack p99).
    held = HeldComposer()
    runtime.coach.composer = held
    endpoint = await serve(typing_after=0.2)  # build_app: two composing threads without an LLM
    conversations = [f"a:1ack-backlog{i}" for i in range(3)]
    sent = [endpoint.acts.personal(SCENARIOS[0].text, conversation=c) for c in conversations]
    for data in sent:
        status, took = await endpoint.post(data)
        assert status == 202 and took < ACK_LIMIT_SECONDS, (status, took)
    deadline = time.monotonic() + 20
    while held.calls < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert held.calls == 2, "both threads should be composing"
    await asyncio.sleep(1.0)  # several typing intervals
    queue = InboundQueue(runtime.db)
    statuses = [(await asyncio.to_thread(queue.get, inbound_key(Activity().deserialize(d)))).status for d in sent]
    assert sorted(statuses) == [PENDING, PROCESSING, PROCESSING], statuses
    waiting = conversations[statuses.index(PENDING)]
    assert [r for r in endpoint.connector.requests if r.conversation_id == waiting] == []
    assert held.calls == 2

    held.release.set()
    for conversation in conversations:
        await endpoint.connector.wait_for(lambda r, c=conversation: r.conversation_id == c and r.type == "message",
                                          timeout=20)
    await endpoint.app[WORKER_KEY].idle()
    assert [len(endpoint.connector.messages(c)) for c in conversations] == [1, 1, 1]
    assert held.calls == 3


async def test_many_redeliveries_at_once_are_answered_once(serve, runtime):
    endpoint = await serve()
    data = endpoint.acts.personal(SCENARIOS[2].text, conversation="a:1ack-burst")
    results = await asyncio.gather(*(endpoint.post(data) for _ in range(6)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [202], results
    await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1ack-burst" and r.type == "message")
    await endpoint.app[WORKER_KEY].idle()
    await asyncio.sleep(0.3)
    assert len(endpoint.connector.messages("a:1ack-burst")) == 1
    assert len(_escalations(runtime, "teams:a:1ack-burst")) == 1


async def test_the_sweeper_answers_what_a_killed_process_left_without_a_second_escalation(serve, runtime):
    queue = InboundQueue(runtime.db, lease_seconds=30)
    # A process recorded the message, claimed it, opened the escalation in Coach.handle, and died
    # before replying (its lease ran out a while ago). The service URL is only known once the
    # stand-in listens, so the endpoint is started first with a sweeper too slow to interfere.
    endpoint = await serve(sweep_seconds=0.2)
    acts = endpoint.acts
    data = acts.personal(SCENARIOS[4].text, conversation="a:1ack-crash")  # safeguarding: an urgent handoff
    activity = Activity().deserialize(data)
    message = translate.to_inbound(activity)
    key = inbound_key(activity)
    slack_key = "slack:Ev0NOTTEAMS"
    await asyncio.to_thread(queue.record, slack_key, {"message": message.model_dump(mode="json")})
    await asyncio.to_thread(queue.claim, slack_key, now=utcnow() - timedelta(seconds=60))  # due, for Slack
    # Coach.handle ran first here only so the sweeper cannot reach the row before it; the row is
    # then as the killed process left it: claimed, its lease run out, no answer recorded.
    first = await asyncio.to_thread(runtime.coach.handle, message)
    assert first.handoff is not None and first.handoff.created
    [opened] = _escalations(runtime, "teams:a:1ack-crash")
    await asyncio.to_thread(queue.record, key, queued_payload(activity, message))
    assert await asyncio.to_thread(queue.claim, key, now=utcnow() - timedelta(seconds=60)) is not None

    [answer] = await endpoint.connector.wait_for(
        lambda r: r.conversation_id == "a:1ack-crash" and r.type == "message", timeout=15)
    await endpoint.app[WORKER_KEY].idle()
    facts = {f["title"]: f["value"] for f in card_element(answer.cards[0], "handoff")["facts"]}
    assert facts["Ticket"] == first.handoff.ticket
    assert answer.activity_id == data["id"]
    [after] = _escalations(runtime, "teams:a:1ack-crash")
    assert (after.id, len(after.details)) == (opened.id, len(opened.details))
    assert _turns(runtime, "teams:a:1ack-crash") == 1
    assert (await asyncio.to_thread(queue.get, key)).status == DONE
    # The Teams sweeper leaves a Slack row to the Slack process.
    assert (await asyncio.to_thread(queue.get, slack_key)).status == PROCESSING
    await asyncio.sleep(0.5)
    assert len(endpoint.connector.messages("a:1ack-crash")) == 1


async def test_a_reply_the_bot_connector_refused_is_sent_again_by_the_sweeper(serve, runtime):
    endpoint = await serve(sweep_seconds=0.2)
    endpoint.connector.fail_next = 1
    data = endpoint.acts.personal(SCENARIOS[3].text, conversation="a:1ack-refused")
    status, took = await endpoint.post(data)
    assert status == 202 and took < ACK_LIMIT_SECONDS
    await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1ack-refused" and r.kind == "failed")
    key = inbound_key(Activity().deserialize(data))
    # Released for the sweeper (after its grace period), not marked done.
    await endpoint.app[WORKER_KEY].idle()
    assert (await asyncio.to_thread(InboundQueue(runtime.db).get, key)).status != DONE
    [answer] = await endpoint.connector.wait_for(
        lambda r: r.conversation_id == "a:1ack-refused" and r.type == "message" and r.kind == "reply", timeout=15)
    await endpoint.app[WORKER_KEY].idle()
    row = await asyncio.to_thread(InboundQueue(runtime.db).get, key)
    assert (row.status, row.attempts) == (DONE, 2)
    assert answer.activity_id == data["id"]
    # The second attempt got the recorded reply: one turn, one helpdesk ticket.
    assert _turns(runtime, "teams:a:1ack-refused") == 1
    assert len(_escalations(runtime, "teams:a:1ack-refused")) == 1


async def test_a_message_the_database_cannot_take_gets_503_and_is_answered_when_delivered_again(serve, runtime,
                                                                                                 monkeypatch):
    endpoint = await serve()
    queue = endpoint.app[WORKER_KEY].queue
    record = queue.record

    def failing(key: str, payload: dict) -> bool:
        raise StateError("database restarting")

    monkeypatch.setattr(queue, "record", failing)
    data = endpoint.acts.personal(SCENARIOS[1].text, conversation="a:1ack-503")
    status, _ = await endpoint.post(data)
    assert status == 503  # the Bot Framework delivers it again later
    await endpoint.app[WORKER_KEY].idle()
    assert endpoint.connector.messages("a:1ack-503") == [] and _turns(runtime, "teams:a:1ack-503") == 0

    monkeypatch.setattr(queue, "record", record)
    status, _ = await endpoint.post(data)
    assert status == 202
    await endpoint.connector.wait_for(lambda r: r.conversation_id == "a:1ack-503" and r.type == "message")
    await endpoint.app[WORKER_KEY].idle()
    assert len(endpoint.connector.messages("a:1ack-503")) == 1
