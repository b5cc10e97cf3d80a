"""Claim and Resolve buttons on the integrators' Teams channel handoff card, end to end.

A teacher's request goes through the running Teams endpoint (the real aiohttp app and
CloudAdapter on loopback); the outbox posts the handoff card to the loopback Bot Connector
stand-in (tests/bot_connector_server.py); an integrator's Action.Submit click comes back in
through the same endpoint. Assertions are on what the stand-in received and on the state
database (escalations and outbox rows), never on anything the test set up itself.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.delivery.teams_channel import CLAIM, RESOLVE, TeamsChannel, handoff_click
from adapters.teams.proactive import TeamsNotifier
from adapters.teams.references import ReferenceStore
from adapters.teams.server import WORKER_KEY, build_app, make_adapter
from adapters.wiring import Runtime, build_runtime
from bot.handoff.escalations import EscalationRow
from bot.handoff.delivery import OutboxItem
from bot.handoff.outbox import OutboxRow
from bot.settings import Settings, TeamsSettings
from bot.state.database import StateDB
from tests.bot_connector_server import BotConnectorServer, Recorded, TeamsActivities

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
FAST = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "poll_seconds": 0.1, "lease_seconds": 10}
CHANNEL = "19:integrators@thread.tacv2"
STAFFROOM = "19:staffroom@thread.tacv2"


# -- fixtures -------------------------------------------------------------------------------------

def _serve_on_a_thread(server: BotConnectorServer) -> Iterator[BotConnectorServer]:
    # Its own loop: the outbox worker's synchronous sends must not wait on the test's loop.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bot-connector", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def connector() -> Iterator[BotConnectorServer]:
    yield from _serve_on_a_thread(BotConnectorServer())


@pytest.fixture
def teams_runtime(settings: Settings, store, connector) -> Iterator[Runtime]:
    """A runtime whose outbox delivers to the integrators' Teams channel on the stand-in."""
    s = Settings(data_dir=settings.data_dir, config_dir=CONFIG_DIR, outbox=FAST,
                 teams_channel={"service_url": connector.url, "conversation_id": CHANNEL},
                 access={"integrator": {"teams": ["aad-sam", "aad-tom"]}})
    built = build_runtime(s, auto_starter=False)
    assert built.delivery is not None and built.delivery.worker.alive
    yield built
    built.close(flush_seconds=2)


@asynccontextmanager
async def endpoint(runtime: Runtime) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[int]]]:
    """The Teams endpoint on loopback; yields `post(activity) -> HTTP status`."""
    app = build_app(runtime)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/messages"
    async with aiohttp.ClientSession() as session:

        async def post(activity: dict[str, Any]) -> int:
            async with session.post(url, json=activity) as response:
                await response.read()
            await app[WORKER_KEY].idle()  # a message is answered after the request
            return response.status

        try:
            yield post
        finally:
            await runner.cleanup()


# -- helpers --------------------------------------------------------------------------------------

async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll (without blocking the loop) until `check()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def outbox_rows(runtime: Runtime, escalation_id: int) -> list[OutboxRow]:
    return runtime.delivery.outbox.rows(escalation_id=escalation_id)


def delivered(runtime: Runtime, escalation_id: int, channel: str, event: str) -> OutboxRow | None:
    return next((r for r in outbox_rows(runtime, escalation_id)
                 if r.channel == channel and r.event == event and r.status == "delivered"), None)


def escalation(runtime: Runtime, escalation_id: int) -> EscalationRow:
    with runtime.db.session() as s:
        return s.get(EscalationRow, escalation_id)


def card_text(card: dict[str, Any]) -> str:
    return "\n".join(b.get("text", "") for b in card.get("body", []) if b.get("type") == "TextBlock")


def buttons(card: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(a["title"], a["data"]) for a in card.get("actions", [])]


def updates(connector: BotConnectorServer, conversation_id: str, activity_id: str) -> list[Recorded]:
    return [r for r in connector.requests if r.kind == "update" and r.conversation_id == conversation_id
            and r.activity_id == activity_id]


def handoff_submit(acts: TeamsActivities, *, channel: str, card_id: str, action: str, escalation_id: int,
                   user: str, user_name: str) -> dict[str, Any]:
    """A click on the handoff card as Teams delivers it: a message with `value`, replying to the card."""
    like = acts.channel("", channel=channel, thread=card_id, mention=False)
    activity = acts.submit(like, action=action, turn_id="", reply_to=card_id, user=user, user_name=user_name)
    activity["value"] = {"action": action, "escalation_id": str(escalation_id)}  # the card's Action.Submit data
    return activity


# -- the tests ------------------------------------------------------------------------------------

async def test_claim_and_resolve_buttons_on_the_teams_channel_card(teams_runtime, connector):
    runtime = teams_runtime
    acts = TeamsActivities(connector.url)
    async with endpoint(runtime) as post:
        # A teacher asks for a person in a chat with the bot: an integrator handoff is opened.
        question = acts.personal("can I talk to a real person please", conversation="a:1buttons")
        assert await post(question) == 202
        with runtime.db.session() as s:
            row = s.query(EscalationRow).filter(EscalationRow.memory_key == "teams:a:1buttons").one()
        eid, ticket = row.id, row.ticket
        assert row.target == "integrator" and row.status == "open"

        # The outbox posts the card to the integrators' channel, with both buttons naming the escalation.
        opened = await eventually(lambda: delivered(runtime, eid, "teams_channel", "opened"), "the card to be posted")
        card_id = opened.receipt["activity_id"]
        assert card_id and card_id.startswith("sent-")  # the id the Bot Connector gave the post, kept to redraw it
        [posted] = connector.messages(CHANNEL)
        [card] = posted.cards
        assert buttons(card) == [("Claim", {"action": CLAIM, "escalation_id": str(eid)}),
                                 ("Resolve", {"action": RESOLVE, "escalation_id": str(eid)})]
        assert all(a["type"] == "Action.Submit" for a in card["actions"])
        # Resolve's note is an input on the card; Claim sends no inputs, Resolve sends it with its data.
        [note_input] = [b for b in card["body"] if b["type"] == "Input.Text"]
        assert note_input["id"] == "resolution_note" and note_input["isMultiline"] is True
        assert [a.get("associatedInputs") for a in card["actions"]] == ["none", "auto"]
        text = card_text(card)
        assert ticket in text and f"To take it: `coach handoffs claim {ticket}`" in text
        assert ticket in posted.body["text"]  # the heading and notification line

        # A Claim from a card seen outside the integrators' channel is not taken.
        stray = handoff_submit(acts, channel=STAFFROOM, card_id=card_id, action=CLAIM, escalation_id=eid,
                               user="eve", user_name="Eve Teacher")
        assert await post(stray) in (200, 201)
        assert escalation(runtime, eid).status == "open"
        assert not [r for r in connector.requests if r.kind == "update"]

        # Sam clicks Claim in the integrators' channel.
        rows_before = len(outbox_rows(runtime, eid))
        claim = handoff_submit(acts, channel=CHANNEL, card_id=card_id, action=CLAIM, escalation_id=eid,
                               user="sam", user_name="Sam Integrator")
        assert await post(claim) in (200, 201)
        claimed = escalation(runtime, eid)
        assert (claimed.status, claimed.claimed_by, claimed.claimed_by_name) == ("claimed", "teams:aad-sam", "Sam Integrator")

        # The bot redrew the card in place, in the thread the click came from: only Resolve is left.
        [redrawn] = updates(connector, f"{CHANNEL};messageid={card_id}", card_id)
        [new_card] = redrawn.cards
        assert buttons(new_card) == [("Resolve", {"action": RESOLVE, "escalation_id": str(eid)})]
        assert "Claimed by Sam Integrator" in card_text(new_card) and ticket in card_text(new_card)

        # As for a Slack claim, the core queued the teacher's notice (and the channel's claimed event).
        new_rows = {(r.channel, r.event) for r in outbox_rows(runtime, eid)[rows_before:]}
        assert new_rows == {("teacher:teams", "claimed"), ("teams_channel", "claimed")}
        await eventually(lambda: delivered(runtime, eid, "teacher:teams", "claimed"), "the teacher's notice")
        [told] = [m for m in connector.messages("a:1buttons") if "picked up" in (m.body.get("text") or "")]
        assert "Sam Integrator" in told.body["text"] and ticket in told.body["text"]
        # The outbox's claimed event redraws the same card from the channel: the same buttons.
        receipt = (await eventually(lambda: delivered(runtime, eid, "teams_channel", "claimed"),
                                    "the channel's claimed event")).receipt
        assert receipt == {"activity_id": card_id, "updated": True}
        [from_outbox] = updates(connector, CHANNEL, card_id)
        assert buttons(from_outbox.cards[0]) == buttons(new_card)

        # A second Claim, by someone else, changes nothing: same record, no new rows, no new redraw.
        rows_before = len(outbox_rows(runtime, eid))
        again = handoff_submit(acts, channel=CHANNEL, card_id=card_id, action=CLAIM, escalation_id=eid,
                               user="tom", user_name="Tom Integrator")
        assert await post(again) in (200, 201)
        after = escalation(runtime, eid)
        assert (after.status, after.claimed_by, after.claimed_by_name, after.claimed_at) == \
            ("claimed", "teams:aad-sam", "Sam Integrator", claimed.claimed_at)
        assert len(outbox_rows(runtime, eid)) == rows_before
        assert len(updates(connector, f"{CHANNEL};messageid={card_id}", card_id)) == 1
        # Nor was anything said in the card's thread (an error would have posted an apology there).
        assert connector.messages(f"{CHANNEL};messageid={card_id}") == []

        # Resolve with a note typed on the card (Teams merges the input into the submit's value):
        # recorded masked, and the card keeps no buttons and no input at all.
        resolve = handoff_submit(acts, channel=CHANNEL, card_id=card_id, action=RESOLVE, escalation_id=eid,
                                 user="sam", user_name="Sam Integrator")
        resolve["value"]["resolution_note"] = ("Start with a two-minute interview; my student Priya Shah's "
                                               "group modelled it for the class.")
        assert await post(resolve) in (200, 201)
        done = escalation(runtime, eid)
        assert (done.status, done.resolved_by, done.resolved_by_name) == ("resolved", "teams:aad-sam", "Sam Integrator")
        assert done.resolution_note.startswith("Start with a two-minute interview; my student [")
        assert "Priya" not in done.resolution_note and "Shah" not in done.resolution_note
        last = updates(connector, f"{CHANNEL};messageid={card_id}", card_id)[-1].cards[0]
        assert "actions" not in last and "Resolved by Sam Integrator" in card_text(last)
        assert not [b for b in last["body"] if b["type"] == "Input.Text"]
        assert "Note: Start with a two-minute interview" in card_text(last) and "Priya" not in card_text(last)
        assert connector.messages(f"{CHANNEL};messageid={card_id}") == []
        assert ("teacher:teams", "resolved") in {(r.channel, r.event) for r in outbox_rows(runtime, eid)}


class GoneCardConnector(BotConnectorServer):
    """The stand-in, answering every update with 404, as Teams does for a deleted post."""

    async def _update(self, request: web.Request) -> web.Response:
        await self._record(request, "update")
        return web.json_response({"error": {"code": "NotFound", "message": "message not found"}}, status=404)


@pytest.fixture
def gone_connector() -> Iterator[BotConnectorServer]:
    yield from _serve_on_a_thread(GoneCardConnector())


def _item(event: str, status: str, first: dict[str, Any] | None) -> OutboxItem:
    context = {"escalation_id": 7, "ticket": "I-0007", "target": "integrator", "event": event,
               "title": "Teacher asked for a person", "summary": "The teacher asked for a person.",
               "status": status,
               "status_line": "Claimed by Bea at 2025-03-03 09:20 UTC" if status == "claimed" else None}
    return OutboxItem(id=1, key=f"coach-7-{event}-1-teams_channel-x", escalation_id=7, ticket="I-0007", event=event,
                      seq=1, channel="teams_channel", payload={"context": context}, attempt=1,
                      created_at=datetime.now(timezone.utc), first=first)


def test_a_card_that_cannot_be_updated_gets_a_reply_in_its_thread(tmp_path, gone_connector):
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    references = ReferenceStore(db)
    channel = TeamsChannel(TeamsNotifier(make_adapter(TeamsSettings()), references), references, CHANNEL,
                           service_url=gone_connector.url)
    receipt = channel.deliver(_item("opened", "open", None))
    card_id = receipt["activity_id"]
    assert [t for t, _ in buttons(gone_connector.messages(CHANNEL)[0].cards[0])] == ["Claim", "Resolve"]

    claimed = channel.deliver(_item("claimed", "claimed", {"status": "delivered", "receipt": receipt}))
    [tried] = [r for r in gone_connector.requests if r.kind == "update"]
    assert tried.activity_id == card_id and [t for t, _ in buttons(tried.cards[0])] == ["Resolve"]
    # Teams said the post is gone: the status goes into the post's thread instead of being retried for ever.
    [reply] = gone_connector.messages(f"{CHANNEL};messageid={card_id}")
    assert "Claimed by Bea" in reply.body["text"] and "I-0007" in reply.body["text"]
    assert claimed == {"activity_id": claimed["activity_id"], "thread": True} and claimed["activity_id"]


@pytest.mark.parametrize("value, expected", [
    ({"action": CLAIM, "escalation_id": "12"}, (12, "claim", None)),
    ({"action": RESOLVE, "escalation_id": 12}, (12, "resolve", None)),
    ({"action": RESOLVE, "escalation_id": 12, "resolution_note": "Use Flip"}, (12, "resolve", "Use Flip")),
    ({"action": RESOLVE, "escalation_id": 12, "resolution_note": "   "}, (12, "resolve", None)),
    ({"action": CLAIM, "escalation_id": 12, "resolution_note": "ignored"}, (12, "claim", None)),
    ({"action": "helped", "turn_id": "t-1"}, None),  # the teacher's feedback buttons are not handoffs
    ({"action": CLAIM, "escalation_id": "twelve"}, None),
    ({"action": CLAIM, "escalation_id": True}, None),
    ({"action": CLAIM, "escalation_id": "-3"}, None),
    ({"action": {"nested": 1}, "escalation_id": "12"}, None),
    ("handoff_claim", None),
])
def test_handoff_click_reads_only_our_buttons(value, expected):
    assert handoff_click(value) == expected
