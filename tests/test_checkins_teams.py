"""Coaching cycles end to end through Teams: the production aiohttp app, the loopback Bot Connector
stand-in, an injectable clock. Offer on the card, choice clicked (the client's zone from the activity),
check-in sent once into the same personal chat at 15:30 local, answered.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from adapters.teams.server import WORKER_KEY, build_app
from adapters.wiring import build_runtime
from bot.settings import Settings
from tests.bot_connector_server import BotConnectorServer, TeamsActivities
from tests.conftest import CONFIG_DIR, FIXTURE_KB
from tests.slack_api_server import embedded_kb

pytestmark = pytest.mark.server
UTC = timezone.utc
CHAT = "a:1checkins"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def actions_of(record) -> dict[str, str]:
    """action -> turn_id of the buttons on the one card a message carries."""
    return {a["data"]["action"]: a["data"]["turn_id"] for a in record.cards[0].get("actions", [])}


async def test_teams_offer_choice_and_one_checkin_in_the_same_chat(tmp_path: Path, embedder) -> None:
    settings = Settings(data_dir=embedded_kb(FIXTURE_KB, embedder), database_url=f"sqlite:///{tmp_path / 'state.db'}",
                        config_dir=CONFIG_DIR, checkins={"poll_seconds": 3600})
    clock = Clock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))  # Monday
    runtime = build_runtime(settings, auto_starter=False, clock=clock)
    async with BotConnectorServer() as connector, ClientSession() as session:
        app = build_app(runtime)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/messages"
        acts = TeamsActivities(connector.url)

        async def post(activity: dict) -> None:
            async with session.post(url, json=activity) as response:
                assert response.status in (200, 201, 202), await response.text()
            await app[WORKER_KEY].idle()  # a message is answered after the request

        def messages() -> list:
            return [r for r in connector.requests if r.conversation_id == CHAT and r.type == "message"
                    and r.kind != "update"]

        try:
            await post(acts.personal("how can I quickly check understanding at the end of a lesson?", conversation=CHAT))
            await connector.wait_for(lambda r: r.conversation_id == CHAT and r.type == "message")
            plan = acts.personal("Thanks! I'll try exit tickets with 9B on Thursday", conversation=CHAT)
            await post(plan)
            await connector.wait_for(lambda r: r.conversation_id == CHAT and r.type == "message", 2)
            offer = messages()[1]
            buttons = actions_of(offer)
            assert list(buttons) == ["checkin_after_day", "checkin_few_days", "checkin_next_week", "checkin_no",
                                     "checkin_never"]
            await post(acts.submit(plan, action="checkin_after_day", turn_id=buttons["checkin_after_day"]))
            await connector.wait_for(lambda r: r.conversation_id == CHAT and r.type == "message" and r.kind != "update", 3)
            assert "Done: I'll check in on Thursday 10 December at 15:30" in json.dumps(messages()[2].body)

            clock.now = datetime(2026, 12, 10, 15, 31, tzinfo=UTC)  # Thursday 15:31 in London (clientInfo zone)
            sent = await asyncio.to_thread(runtime.checkins.deliver_due)
            again = await asyncio.to_thread(runtime.checkins.deliver_due)
            assert (sent.sent, again.claimed) == (1, 0)
            checkin = messages()[3]
            assert checkin.kind == "send"  # a new message in the chat, not a reply to anything
            assert "On Thursday you were going to try exit tickets with 9B. How did it go?" in json.dumps(checkin.body)
            answer = actions_of(checkin)
            assert list(answer) == ["went_well", "went_mixed", "not_yet"]
            await post(acts.submit(plan, action="not_yet", turn_id=answer["not_yet"]))
            await connector.wait_for(lambda r: r.conversation_id == CHAT and r.type == "message" and r.kind != "update", 5)
            assert "What got in the way?" in json.dumps(messages()[4].body)
            [row] = runtime.coach.checkins.checkins.rows()
            assert (row.outcome, row.tz) == ("not_yet", "Europe/London")
        finally:
            await runner.cleanup()
            runtime.close(flush_seconds=1.0)
