"""A loopback stand-in for the Bot Connector REST API that Teams (or the Emulator) provides.

An activity's `serviceUrl` points here; the bot's real ConnectorClient then POSTs its replies
to it. Every request body is recorded so tests assert on what the bot actually sent.

    async with BotConnectorServer() as connector:
        ... post an activity with serviceUrl=connector.url ...
        cards = await connector.wait_for(lambda r: r.kind == "send" and r.cards)

Routes (the ones a bot uses):
  POST /v3/conversations                                   create a conversation (proactive 1:1)
  POST /v3/conversations/{conversationId}/activities       send to the conversation
  POST /v3/conversations/{conversationId}/activities/{id}  reply to an activity
  PUT  /v3/conversations/{conversationId}/activities/{id}  update an activity (a card after a click)
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CARD = "application/vnd.microsoft.card.adaptive"


@dataclass
class Recorded:
    """One request the bot made."""

    kind: str  # "create", "send", "reply", "update"
    method: str
    path: str
    conversation_id: str | None
    activity_id: str | None
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def type(self) -> str | None:
        return self.body.get("type")

    @property
    def cards(self) -> list[dict[str, Any]]:
        """Adaptive Card contents attached to this activity."""
        return [a.get("content") for a in self.body.get("attachments") or [] if a.get("contentType") == CARD]


class BotConnectorServer:
    """Plays the Bot Connector API on 127.0.0.1, on a port the OS picks."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.fail_next = 0  # answer this many sends and replies with 502 (recorded as kind "failed")
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> BotConnectorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> str:
        """Start listening; returns the base URL to use as `serviceUrl`."""
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{conversation_id}/activities", self._send)
        app.router.add_post("/v3/conversations/{conversation_id}/activities/{activity_id}", self._reply)
        app.router.add_put("/v3/conversations/{conversation_id}/activities/{activity_id}", self._update)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # port 0: no race with other tests for a "free" port
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- recording ---------------------------------------------------------------------------

    async def _record(self, request: web.Request, kind: str) -> Recorded:
        body = await request.json()
        entry = Recorded(kind=kind, method=request.method, path=request.path,
                         conversation_id=request.match_info.get("conversation_id"),
                         activity_id=request.match_info.get("activity_id"), body=body,
                         headers={k.lower(): v for k, v in request.headers.items()})
        self.requests.append(entry)
        return entry

    async def _create(self, request: web.Request) -> web.Response:
        await self._record(request, "create")
        n = next(self._ids)
        return web.json_response({"id": f"a:personal-{n}", "activityId": f"create-{n}",
                                  "serviceUrl": self.url}, status=201)

    async def _failed(self, request: web.Request) -> web.Response | None:
        if self.fail_next <= 0:
            return None
        self.fail_next -= 1
        await self._record(request, "failed")
        return web.json_response({"error": {"code": "ServiceError", "message": "try again"}}, status=502)

    async def _send(self, request: web.Request) -> web.Response:
        failed = await self._failed(request)
        if failed is not None:
            return failed
        await self._record(request, "send")
        return web.json_response({"id": f"sent-{next(self._ids)}"}, status=201)

    async def _reply(self, request: web.Request) -> web.Response:
        failed = await self._failed(request)
        if failed is not None:
            return failed
        await self._record(request, "reply")
        return web.json_response({"id": f"reply-{next(self._ids)}"}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        entry = await self._record(request, "update")
        return web.json_response({"id": entry.activity_id}, status=200)

    # -- reading -----------------------------------------------------------------------------

    def messages(self, conversation_id: str | None = None) -> list[Recorded]:
        """Message activities sent or replied (not typing, not updates), optionally for one conversation."""
        return [r for r in self.requests if r.kind in ("send", "reply") and r.type == "message"
                and (conversation_id is None or r.conversation_id == conversation_id)]

    async def wait_for(self, predicate: Callable[[Recorded], bool], count: int = 1,
                       timeout: float = 10.0) -> list[Recorded]:
        """Poll until `count` recorded requests match; fails with what was recorded instead."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests if predicate(r)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [(r.kind, r.type, r.conversation_id) for r in self.requests]
                raise AssertionError(f"expected {count} matching request(s) within {timeout}s; recorded {seen}")
            await asyncio.sleep(0.02)


@contextmanager
def serving_in_thread() -> Iterator[BotConnectorServer]:
    """The stand-in on an event loop of its own thread, for synchronous callers (an outbox or check-in worker)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bot-connector", daemon=True)
    thread.start()
    server = BotConnectorServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


# -- activity JSON as Teams sends it -------------------------------------------------------------


class TeamsActivities:
    """Builds Bot Framework activity JSON the way Teams delivers it to /api/messages."""

    def __init__(self, service_url: str = "https://smba.trafficmanager.net/emea/", *,
                 bot_id: str = "28:coach-bot", bot_name: str = "Integration Coach", tenant: str = "tenant-1") -> None:
        self.service_url = service_url
        self.bot = {"id": bot_id, "name": bot_name}
        self.tenant = tenant
        self._ids = itertools.count(int(time.time() * 1000))

    def _base(self, kind: str, conversation: dict[str, Any], user: str, user_name: str,
              channel_data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "type": kind,
            "id": str(next(self._ids)),
            "timestamp": "2025-03-03T09:15:00.000Z",
            "localTimestamp": "2025-03-03T09:15:00.000+00:00",
            "channelId": "msteams",
            "serviceUrl": self.service_url,
            "from": {"id": f"29:{user}", "name": user_name, "aadObjectId": f"aad-{user}"},
            "conversation": {"tenantId": self.tenant, **conversation},
            "recipient": dict(self.bot),
            "channelData": {"tenant": {"id": self.tenant}, **(channel_data or {})},
            "locale": "en-GB",
            "entities": [{"type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web",
                          "timezone": "Europe/London"}],
        }

    def personal(self, text: str, *, conversation: str = "a:1personal", user: str = "ana",
                 user_name: str = "Ana Teacher") -> dict[str, Any]:
        """A message in the bot's one-to-one chat."""
        activity = self._base("message", {"conversationType": "personal", "id": conversation}, user, user_name)
        activity.update(text=text, textFormat="plain")
        return activity

    def channel(self, text: str, *, channel: str = "19:staffroom@thread.tacv2", thread: str | None = None,
                user: str = "ana", user_name: str = "Ana Teacher", mention: bool = True) -> dict[str, Any]:
        """A channel message (a new post, or a reply when `thread` names the chain's root id)."""
        activity_id = str(next(self._ids))
        root = thread or activity_id
        conversation = {"isGroup": True, "conversationType": "channel", "id": f"{channel};messageid={root}"}
        channel_data = {"teamsChannelId": channel, "teamsTeamId": "19:team@thread.tacv2",
                        "channel": {"id": channel, "name": "Staffroom"},
                        "team": {"id": "19:team@thread.tacv2", "name": "Year 5 Team"}}
        activity = self._base("message", conversation, user, user_name, channel_data)
        activity["id"] = activity_id
        at = f"<at>{self.bot['name']}</at>"
        activity.update(text=f"{at} {text}" if mention else text, textFormat="plain")
        if mention:
            activity["entities"].insert(0, {"type": "mention", "text": at, "mentioned": dict(self.bot)})
        return activity

    def group(self, text: str, *, conversation: str = "19:groupchat@thread.v2", user: str = "ana",
              user_name: str = "Ana Teacher") -> dict[str, Any]:
        """A message in a group chat that includes the bot, @mentioning it."""
        activity = self._base("message", {"isGroup": True, "conversationType": "groupChat", "id": conversation},
                              user, user_name)
        at = f"<at>{self.bot['name']}</at>"
        activity.update(text=f"{at} {text}", textFormat="plain")
        activity["entities"].insert(0, {"type": "mention", "text": at, "mentioned": dict(self.bot)})
        return activity

    def submit(self, like: dict[str, Any], *, action: str, turn_id: str, reply_to: str | None = None,
               user: str = "ana", user_name: str = "Ana Teacher", source_id: str | None = None) -> dict[str, Any]:
        """An Action.Submit click on a card sent in `like`'s conversation (Teams: a message with `value`)."""
        activity = self._base("message", dict(like["conversation"]), user, user_name, like.get("channelData"))
        activity["value"] = {"action": action, "turn_id": turn_id, **({"source_id": source_id} if source_id else {})}
        if reply_to:
            activity["replyToId"] = reply_to
        return activity

    def invoke_action(self, like: dict[str, Any], *, action: str, turn_id: str, user: str = "ana",
                      user_name: str = "Ana Teacher") -> dict[str, Any]:
        """An Action.Execute click (universal actions): an `adaptiveCard/action` invoke."""
        activity = self._base("invoke", dict(like["conversation"]), user, user_name, like.get("channelData"))
        activity.update(name="adaptiveCard/action", value={
            "action": {"type": "Action.Execute", "verb": "coach_feedback", "data": {"action": action, "turn_id": turn_id}},
            "trigger": "manual"})
        return activity

    def bot_added(self, *, conversation: str = "a:1personal", conversation_type: str = "personal",
                  others: tuple[str, ...] = (), include_bot: bool = True) -> dict[str, Any]:
        """conversationUpdate: members added (the bot itself, and/or people)."""
        members = ([dict(self.bot)] if include_bot else []) + [{"id": f"29:{o}"} for o in others]
        conv = {"conversationType": conversation_type, "id": conversation}
        if conversation_type != "personal":
            conv["isGroup"] = True
        activity = self._base("conversationUpdate", conv, "ana", "Ana Teacher",
                              {"eventType": "teamMemberAdded" if conversation_type == "channel" else None})
        activity["membersAdded"] = members
        return activity


# -- reading cards --------------------------------------------------------------------------------


def card_element(card: dict[str, Any], element_id: str) -> dict[str, Any] | None:
    """The body element of an Adaptive Card with this id."""
    return next((b for b in card.get("body", []) if b.get("id") == element_id), None)


def source_elements(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's source rows, best first (element id `source-<entry id>`)."""
    return [b for b in card.get("body", []) if str(b.get("id", "")).startswith("source-")]


def read_actions(element: dict[str, Any]) -> list[dict[str, Any]]:
    """The "Read it" buttons inside one source row."""
    found = []
    for column in element.get("columns", []):
        for item in column.get("items", []):
            found.extend(a for a in item.get("actions", []) if a.get("data", {}).get("action") == "read_source")
    return found


def assert_source_row(element: dict[str, Any], entry: Any) -> None:
    """A source row opens the entry: its link when it has one, otherwise a "Read it" button for it."""
    link = entry.first_link()
    if link:
        assert element["text"] == f"[{entry.title}]({link.url})", element
    else:
        actions = read_actions(element)
        assert [a["data"]["source_id"] for a in actions] == [entry.id], element


def assert_scenario_card(card: dict[str, Any], scenario: Any, entries: dict[str, Any]) -> None:
    """The card a scenario must produce: its route, its first source as a link, its handoff, its buttons."""
    from adapters.teams.cards import ROUTE_LABELS
    from bot.coach import COACH_ACTIONS
    from bot.models import ACTION_LABELS, Route

    route = Route(scenario.route)
    assert card["type"] == "AdaptiveCard", card
    assert card_element(card, "reply")["text"].strip(), f"{scenario.name}: empty reply text"
    assert card_element(card, "route")["text"] == ROUTE_LABELS[route], f"{scenario.name}: {card_element(card, 'route')}"
    if scenario.first_source:
        rows = source_elements(card)
        assert rows and rows[0]["id"] == f"source-{scenario.first_source}", f"{scenario.name}: sources {rows!r}"
        assert_source_row(rows[0], entries[scenario.first_source])
    handoff = card_element(card, "handoff")
    if scenario.handoff_target:
        facts = {f["title"]: f["value"] for f in handoff["facts"]} if handoff else {}
        prefix = "H-" if scenario.handoff_target == "helpdesk" else "I-"
        assert facts.get("Ticket", "").startswith(prefix), f"{scenario.name}: handoff facts {facts}"
    else:
        assert handoff is None, f"{scenario.name}: unexpected handoff {handoff}"
    titles = [a["title"] for a in card.get("actions", [])]
    expected_titles = [ACTION_LABELS[a] for a in COACH_ACTIONS] if route is Route.COACH else []
    assert titles == expected_titles, f"{scenario.name}: buttons {titles}"
