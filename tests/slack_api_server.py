"""A loopback stand-in for Slack, for tests and benchmarks: its Web API, response_urls and Socket Mode.

Real slack_sdk/slack_bolt code talks to it over HTTP (point `AsyncWebClient(base_url=...)` or
`COACH_SLACK_API_URL` at `server.base_url`); nothing in the SDK is mocked. It records every
request body, so tests assert on what reached `chat.postMessage`, and offers waits that poll.

    with SlackAPIServer() as slack:
        ...  # start the app with api_url=slack.base_url
        [call] = slack.wait_for("chat.postMessage")
        assert call.body["thread_ts"] == "1515449522.000016"

The second half of the module builds what Slack sends to an app (signed HTTP requests, and
payloads shaped like Slack's documented examples), so every test speaks the same dialect.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_USER_ID = "UCOACHBOT"
BOT_ID = "BCOACHBOT"
TEAM_ID = "T0SCHOOL1"
APP_ID = "A0COACH01"


@dataclass(frozen=True)
class ApiCall:
    """One request the app made: Web API method (or `hook:<name>` for a response_url), body, when."""

    method: str
    body: dict[str, Any]
    token_kind: str | None  # "xoxb", "xapp" or None: which kind of token came, never the token
    at: float = field(default_factory=time.monotonic)


class SlackAPIServer:
    """Slack's Web API, response_url webhooks and a Socket Mode WebSocket on 127.0.0.1 (port 0)."""

    def __init__(self, *, bot_user_id: str = BOT_USER_ID, bot_id: str = BOT_ID, team_id: str = TEAM_ID) -> None:
        self.bot_user_id, self.bot_id, self.team_id = bot_user_id, bot_id, team_id
        self.port: int | None = None
        self._calls: list[ApiCall] = []
        self._lock = threading.Lock()
        self._failures: dict[str, list[str]] = {}
        self._delays: dict[str, float] = {}
        self._held: dict[str, asyncio.Event] = {}  # methods applied, then answered only on release()
        self._ts = itertools.count(1)
        self.user_tz: dict[str, str] = {}  # users.info answers these zones (Europe/London otherwise)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> latest text/blocks

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "SlackAPIServer":
        """Serve in a background thread with its own event loop; returns once the port is bound."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # surfaced to the caller of start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="slack-api-stand-in", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Slack API stand-in did not start within 10 s")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> "SlackAPIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/hooks/{name}", self._hook)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what a test reads and steers -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The Web API base URL to give the app (ends with /)."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str | None = None) -> str:
        """A response_url (as in slash commands and button payloads) that records to `hook:<name>`."""
        return f"http://127.0.0.1:{self.port}/hooks/{name or uuid.uuid4().hex[:12]}"

    @property
    def requests(self) -> list[ApiCall]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls(self, method: str, where: Callable[[ApiCall], bool] | None = None) -> list[ApiCall]:
        """The requests to one method (e.g. "chat.postMessage", or "hook:<name>"), optionally filtered."""
        return [c for c in self.requests if c.method == method and (where is None or where(c))]

    def wait_for(self, method: str, count: int = 1, *, timeout: float = 10.0,
                 where: Callable[[ApiCall], bool] | None = None) -> list[ApiCall]:
        """Poll until at least `count` matching calls arrived; returns them, or raises AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method, where)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [c.method for c in self.requests]
                raise AssertionError(f"waited {timeout}s for {count} x {method}, got {len(found)}; calls seen: {seen}")
            time.sleep(0.01)

    async def async_wait_for(self, method: str, count: int = 1, *, timeout: float = 10.0,
                             where: Callable[[ApiCall], bool] | None = None) -> list[ApiCall]:
        """`wait_for` for async tests (polls with asyncio.sleep, so the test's loop keeps running)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method, where)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout}s for {count} x {method}, got {len(found)}")
            await asyncio.sleep(0.01)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no request has arrived for `quiet` seconds (to assert something did NOT happen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests
            last = reqs[-1].at if reqs else 0.0
            if time.monotonic() - last >= quiet:
                return
            time.sleep(0.02)

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        """Make the next `times` calls to `method` answer {"ok": false, "error": error}.

        "ratelimited" answers as Slack does when rate-limiting: HTTP 429 with Retry-After: 1.
        """
        with self._lock:
            self._failures.setdefault(method, []).extend([error] * times)

    def delay(self, method: str, seconds: float) -> None:
        """Make every call to `method` take `seconds` (a slow Slack)."""
        self._delays[method] = seconds

    def hold_after(self, method: str) -> None:
        """Apply every call to `method` but answer it only after `release()`: a caller killed meanwhile
        has posted without learning the ts (a crash between posting and writing the ts down)."""
        assert self._loop is not None
        self._held[method] = asyncio.run_coroutine_threadsafe(self._event(), self._loop).result(5)

    @staticmethod
    async def _event() -> asyncio.Event:
        return asyncio.Event()

    def release(self) -> None:
        """Answer the held calls and stop holding."""
        held, self._held = self._held, {}
        if self._loop is not None:
            for event in held.values():
                self._loop.call_soon_threadsafe(event.set)

    def reset(self) -> None:
        """Forget recorded calls, failures, delays and messages."""
        with self._lock:
            self._calls.clear()
            self._failures.clear()
            self._delays.clear()
            self.messages.clear()
            self.socket_acks.clear()
            self.user_tz.clear()

    # -- Web API --------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        ctype = request.content_type
        if ctype == "application/json":
            return json.loads(raw or b"{}")
        body: dict[str, Any] = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        body.update({k: v for k, v in request.query.items() if k not in body})
        for key in ("blocks", "attachments", "view", "metadata"):  # form-encoded JSON fields
            if isinstance(body.get(key), str):
                try:
                    body[key] = json.loads(body[key])
                except json.JSONDecodeError:
                    pass
        return body

    @staticmethod
    def _token_kind(request: web.Request, body: Mapping[str, Any]) -> str | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else str(body.get("token") or "")
        return token.split("-", 1)[0] if "-" in token else None

    def _record(self, method: str, body: dict[str, Any], kind: str | None) -> str | None:
        with self._lock:
            self._calls.append(ApiCall(method, body, kind))
            queue = self._failures.get(method)
            return queue.pop(0) if queue else None

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ts):06d}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._body(request)
        kind = self._token_kind(request, body)
        failure = self._record(method, body, kind)
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        expected = "xapp" if method == "apps.connections.open" else "xoxb"
        if kind != expected:
            return web.json_response({"ok": False, "error": "invalid_auth" if kind else "not_authed"})
        if failure == "ratelimited":  # as Slack does: HTTP 429 with Retry-After
            return web.json_response({"ok": False, "error": failure}, status=429, headers={"Retry-After": "1"})
        if failure:
            return web.json_response({"ok": False, "error": failure})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result = handler(body)
        held = self._held.get(method)
        if held is not None:
            await held.wait()
        return web.json_response({"ok": True, **result})

    def _m_auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://school.slack.com/", "team": "School", "user": "coach", "team_id": self.team_id,
                "user_id": self.bot_user_id, "bot_id": self.bot_id, "is_enterprise_install": False}

    def _m_chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        ts, channel = self._next_ts(), body.get("channel")
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "ts": ts,
                   "text": body.get("text"), "blocks": body.get("blocks") or []}
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        if body.get("metadata"):
            message["metadata"] = body["metadata"]
        self.messages[(str(channel), ts)] = message
        return {"channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (str(body.get("channel")), str(body.get("ts")))
        message = {**self.messages.get(key, {}), "text": body.get("text"), "blocks": body.get("blocks") or []}
        if body.get("metadata"):  # as Slack: metadata given replaces the message's, none keeps it
            message["metadata"] = body["metadata"]
        self.messages[key] = message
        return {"channel": body.get("channel"), "ts": body.get("ts"), "text": body.get("text"), "message": message}

    def _history(self, body: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Messages in `channel` that `keep` accepts, after `oldest`; metadata only with include_all_metadata."""
        channel = str(body.get("channel"))
        oldest = float(body.get("oldest") or 0)
        with_meta = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        found = []
        for (ch, ts), message in list(self.messages.items()):
            if ch != channel or float(ts) <= oldest or not keep({**message, "ts": ts}):
                continue
            shown = {**message, "ts": ts}
            if not with_meta:
                shown.pop("metadata", None)
            found.append(shown)
        return found

    def _m_conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """The channel's top-level messages (thread replies left out), newest first, as Slack answers."""
        found = self._history(body, lambda m: not m.get("thread_ts") or m["thread_ts"] == m["ts"])
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        limit = int(body.get("limit") or 100)
        return {"messages": found[:limit], "has_more": len(found) > limit}

    def _m_conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """A thread (the parent `ts` and its replies), oldest first, as Slack answers."""
        parent = str(body.get("ts"))
        found = self._history({**body, "oldest": None} if body.get("oldest") is None else body,
                              lambda m: m["ts"] == parent or m.get("thread_ts") == parent)
        found.sort(key=lambda m: float(m["ts"]))
        limit = int(body.get("limit") or 100)
        return {"messages": found[:limit], "has_more": len(found) > limit}

    def _m_chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"message_ts": self._next_ts()}

    def _m_views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view") or {}
        return {"view": {"id": "V" + uuid.uuid4().hex[:10].upper(), "team_id": self.team_id, **view}}

    _m_views_update = _m_views_open
    _m_views_push = _m_views_open

    def _m_reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _m_users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        uid = body.get("user")
        return {"user": {"id": uid, "name": f"user-{uid}", "real_name": f"Teacher {uid}",
                         "tz": self.user_tz.get(str(uid), "Europe/London")}}

    def _m_apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={uuid.uuid4().hex}"}

    async def _hook(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        self._record(f"hook:{request.match_info['name']}", body, None)
        return web.Response(text="ok")

    # -- Socket Mode ----------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "debug_info": {"host": "stand-in", "approximate_connection_time": 3600},
                                      "connection_info": {"app_id": APP_ID}}))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    with self._lock:
                        self.socket_acks.append(data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    @property
    def socket_connected(self) -> bool:
        """True while an app holds a Socket Mode connection."""
        return any(not ws.closed for ws in self._sockets)

    def wait_for_socket(self, timeout: float = 5.0) -> bool:
        """Poll until an app holds a Socket Mode connection.

        The client's handshake can finish before this server's handler has recorded the socket,
        so "connected" is checked with a deadline, not at one instant."""
        deadline = time.monotonic() + timeout
        while not self.socket_connected:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def send_envelope(self, payload: Mapping[str, Any], *, envelope_type: str = "events_api",
                      retry_attempt: int = 0) -> str:
        """Push one Socket Mode envelope to the connected app; returns its envelope_id."""
        if self._loop is None or not self.wait_for_socket():
            raise AssertionError("no Socket Mode connection to send to")
        envelope_id = str(uuid.uuid4())
        frame = json.dumps({"envelope_id": envelope_id, "type": envelope_type, "payload": payload,
                            "accepts_response_payload": envelope_type != "events_api",
                            "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""})
        ws = next(ws for ws in self._sockets if not ws.closed)
        asyncio.run_coroutine_threadsafe(ws.send_str(frame), self._loop).result(5)
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Poll until the app acknowledged an envelope; returns the ack frame."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for ack in self.socket_acks:
                    if ack.get("envelope_id") == envelope_id:
                        return ack
            time.sleep(0.01)
        raise AssertionError(f"no Socket Mode ack for envelope {envelope_id} within {timeout}s")


# ==============================================================================================
# What Slack sends to an app: signatures and payloads shaped like Slack's documented examples.
# ==============================================================================================

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the example secret from Slack's signing docs


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The v0 signature headers Slack puts on a request (timestamp defaults to now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: Mapping[str, Any], *, event_id: str | None = None) -> str:
    """An Events API `event_callback` envelope around one event, as JSON."""
    return json.dumps({
        "token": "XXYYZZ", "team_id": TEAM_ID, "api_app_id": APP_ID, "event": dict(event),
        "type": "event_callback", "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": "4-" + uuid.uuid4().hex,
    })


_ts_counter = itertools.count(1)


def new_ts() -> str:
    """A fresh message timestamp, as Slack writes them."""
    return f"{1515449522 + next(_ts_counter)}.{next(_ts_counter):06d}"


def app_mention(text: str, *, user: str = "U061F7AUR", channel: str = "C0CLASSRM1", ts: str | None = None,
                thread_ts: str | None = None) -> dict[str, Any]:
    """An `app_mention` event ("<@bot> question"), as in Slack's example."""
    ts = ts or new_ts()
    event: dict[str, Any] = {"client_msg_id": str(uuid.uuid4()), "type": "app_mention",
                             "text": f"<@{BOT_USER_ID}> {text}", "user": user, "ts": ts, "team": TEAM_ID,
                             "channel": channel, "event_ts": ts,
                             "blocks": [{"type": "rich_text", "block_id": "x1", "elements": []}]}
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = user
    return event


def im_message(text: str, *, user: str = "U2147483697", channel: str = "D024BE91L", ts: str | None = None,
               thread_ts: str | None = None) -> dict[str, Any]:
    """A `message.im` event (a teacher's DM to the coach)."""
    ts = ts or new_ts()
    event: dict[str, Any] = {"client_msg_id": str(uuid.uuid4()), "type": "message", "text": text, "user": user,
                             "ts": ts, "team": TEAM_ID, "channel": channel, "event_ts": ts, "channel_type": "im"}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_changed(text: str, *, channel: str = "D024BE91L") -> dict[str, Any]:
    """An edit (`message_changed`), which the coach must ignore."""
    ts = new_ts()
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel, "ts": new_ts(),
            "event_ts": ts, "channel_type": "im",
            "message": {"type": "message", "user": "U2147483697", "text": text, "ts": ts,
                        "edited": {"user": "U2147483697", "ts": new_ts()}},
            "previous_message": {"type": "message", "user": "U2147483697", "text": "old", "ts": ts}}


def bot_message(text: str, *, channel: str = "D024BE91L", bot_id: str = "B0OTHERBOT") -> dict[str, Any]:
    """A message from a bot (subtype bot_message), which the coach must ignore."""
    ts = new_ts()
    return {"type": "message", "subtype": "bot_message", "text": text, "ts": ts, "username": "otherbot",
            "bot_id": bot_id, "channel": channel, "event_ts": ts, "channel_type": "im"}


def own_message(text: str, *, channel: str = "D024BE91L") -> dict[str, Any]:
    """The coach's own reply coming back as a message event (user = the bot, bot_id set)."""
    ts = new_ts()
    return {"type": "message", "text": text, "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID,
            "ts": ts, "channel": channel, "event_ts": ts, "channel_type": "im",
            "bot_profile": {"id": BOT_ID, "name": "coach", "app_id": APP_ID}}


def channel_join(*, user: str = "U0NEWTEACH", channel: str = "C0CLASSRM1") -> dict[str, Any]:
    """A channel join message (subtype channel_join), which the coach must ignore."""
    ts = new_ts()
    return {"type": "message", "subtype": "channel_join", "user": user, "text": f"<@{user}> has joined the channel",
            "ts": ts, "channel": channel, "event_ts": ts, "channel_type": "channel", "inviter": "U061F7AUR"}


def slash_command(text: str, *, command: str = "/coach", user: str = "U2147483697", channel: str = "C0CLASSRM1",
                  response_url: str = "https://hooks.slack.com/commands/1234/5678") -> str:
    """A slash command as Slack posts it: form-encoded."""
    return urllib.parse.urlencode({
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": TEAM_ID, "team_domain": "school",
        "channel_id": channel, "channel_name": "year5" if channel.startswith("C") else "directmessage",
        "user_id": user, "user_name": "steve", "command": command, "text": text, "api_app_id": APP_ID,
        "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": f"13345224609.738474920.{uuid.uuid4().hex[:20]}",
    })


def _interactive(payload: Mapping[str, Any]) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def block_actions(message: Mapping[str, Any], action_id: str, value: str, *, user: str = "U2147483697",
                  channel: str = "D024BE91L", is_ephemeral: bool = False,
                  response_url: str = "https://hooks.slack.com/actions/T0/1/x") -> str:
    """A button click on `message` (a message dict with ts, text, blocks, maybe thread_ts), form-encoded."""
    button = next((e for b in message.get("blocks", []) if b.get("type") == "actions"
                   for e in b.get("elements", []) if e.get("action_id") == action_id), None)
    container = {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                 "is_ephemeral": is_ephemeral}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    payload: dict[str, Any] = {
        "type": "block_actions", "user": {"id": user, "username": "steve", "name": "steve", "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": "9s8d9as89d8as9d8as989", "container": container,
        "trigger_id": f"12466734323.1395872398.{uuid.uuid4().hex[:20]}",
        "team": {"id": TEAM_ID, "domain": "school"}, "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "year5"},
        "state": {"values": {}}, "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": "coach.actions",
                     "text": (button or {}).get("text", {"type": "plain_text", "text": action_id}),
                     "value": value, "type": "button", "action_ts": str(time.time())}],
    }
    if not is_ephemeral:
        payload["message"] = {"bot_id": BOT_ID, "type": "message", "text": message.get("text", ""),
                              "user": BOT_USER_ID, "ts": message["ts"], "team": TEAM_ID,
                              "blocks": list(message.get("blocks", [])),
                              **({"thread_ts": message["thread_ts"]} if message.get("thread_ts") else {})}
    return _interactive(payload)


def message_action(message_text: str, *, user: str = "U0INTEGRAT", channel: str = "C0CLASSRM1",
                   callback_id: str = "save_to_kb", response_url: str = "https://hooks.slack.com/app/T0/1/x") -> str:
    """A message shortcut used on a message, form-encoded."""
    ts = new_ts()
    return _interactive({
        "type": "message_action", "token": "Nj2rfC2hU8mAfgaJLemZgO7H", "action_ts": str(time.time()),
        "team": {"id": TEAM_ID, "domain": "school"}, "user": {"id": user, "username": "jordan", "team_id": TEAM_ID,
                                                              "name": "jordan"},
        "channel": {"id": channel, "name": "year5"}, "is_enterprise_install": False, "enterprise": None,
        "callback_id": callback_id, "trigger_id": f"13345224609.8534564800.{uuid.uuid4().hex[:20]}",
        "response_url": response_url, "message_ts": ts,
        "message": {"client_msg_id": str(uuid.uuid4()), "type": "message", "text": message_text,
                    "user": "U061F7AUR", "ts": ts, "team": TEAM_ID, "blocks": []},
    })


def view_submission(view: Mapping[str, Any], values: Mapping[str, Any], *, user: str = "U0INTEGRAT") -> str:
    """A modal submitted with `values` (Slack's state.values shape), form-encoded."""
    submitted = {"id": "V0MODAL01", "team_id": TEAM_ID, "type": "modal", "blocks": view.get("blocks", []),
                 "private_metadata": view.get("private_metadata", ""), "callback_id": view.get("callback_id"),
                 "state": {"values": dict(values)}, "hash": "156772938.1827394", "title": view.get("title"),
                 "clear_on_close": False, "notify_on_close": False, "close": view.get("close"),
                 "submit": view.get("submit"), "previous_view_id": None, "root_view_id": "V0MODAL01",
                 "app_id": APP_ID, "external_id": "", "app_installed_team_id": TEAM_ID, "bot_id": BOT_ID}
    return _interactive({
        "type": "view_submission", "team": {"id": TEAM_ID, "domain": "school"},
        "user": {"id": user, "username": "jordan", "name": "jordan", "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": "XXXXXXXXXX", "trigger_id": "1234.5678.abcd", "view": submitted,
        "response_urls": [], "is_enterprise_install": False, "enterprise": None,
    })


# ==============================================================================================
# Running an app's asyncio service beside a synchronous test, and posting to it.
# ==============================================================================================

class ServiceThread:
    """Runs an object with async `start()` / `stop()` (e.g. SlackService) in its own thread and event loop."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.service: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> Any:
        """Build and start the service in the thread; returns it once started (or re-raises its error)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.service = self.factory()
                loop.run_until_complete(self.service.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.service.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="service-under-test", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"service did not start within {timeout}s")
        if errors:
            raise errors[0]
        return self.service

    def call(self, coro_factory: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run a coroutine on the service's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(timeout)

    def stop(self) -> None:
        """Stop the service (it drains its work) and join the thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def post_to_app(url: str, body: str, *, content_type: str = "application/json", secret: str = SIGNING_SECRET,
                timestamp: int | None = None, headers: Mapping[str, str] | None = None,
                signed: bool = True, timeout: float = 10.0) -> HttpResult:
    """POST as Slack does (signed unless told not to); returns status and body, 4xx included."""
    import urllib.error
    import urllib.request

    all_headers = {"Content-Type": content_type, **(sign(body, secret=secret, timestamp=timestamp) if signed else {}),
                   **(headers or {})}
    request = urllib.request.Request(url, data=body.encode(), headers=all_headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.read().decode(), time.monotonic() - started)
    except urllib.error.HTTPError as exc:
        return HttpResult(exc.code, exc.read().decode(), time.monotonic() - started)


# ==============================================================================================
# One embedded knowledge base per test process, shared read-only by the Slack test modules.
# ==============================================================================================

_EMBEDDED: dict[str, Any] = {}


def embedded_kb(kb_folder: Any, embedder: Any) -> Any:
    """A data directory holding `kb_folder` embedded in a knowledge store, built once per process.

    Embedding is the slow part of a test's set-up; runtimes only read the store, and each test
    gives its own state database (`database_url`), so sharing the directory keeps tests apart.
    """
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from knowledge.parser import load_folder
    from knowledge.store import KnowledgeStore, open_client

    key = str(Path(kb_folder).resolve())
    if key not in _EMBEDDED:
        data = Path(tempfile.mkdtemp(prefix="slack-kb-"))
        atexit.register(shutil.rmtree, data, True)
        KnowledgeStore(open_client(data_dir=data, chroma_url=None), embedder).sync(load_folder(Path(kb_folder)).entries)
        _EMBEDDED[key] = data
    return _EMBEDDED[key]
