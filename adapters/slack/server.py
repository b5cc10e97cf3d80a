"""Start-up checks and the two ways to run the Slack app: Socket Mode, or HTTP events on aiohttp.

Socket Mode when `SLACK_APP_TOKEN` is set (no public URL: the usual choice for a school);
otherwise an aiohttp server with `POST /slack/events` (events, commands, buttons, shortcuts and
modals all arrive there, each verified with `SLACK_SIGNING_SECRET`) and `GET /healthz`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler, AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import API_URL_ALIAS  # the documented name; COACH_SLACK__API_URL also works
from adapters.slack.app import SlackApp, build_app
from adapters.wiring import Runtime, StartupError
from bot.settings import Settings

log = logging.getLogger(__name__)

Mode = Literal["socket", "http"]
EVENTS_PATH = "/slack/events"


@dataclass(frozen=True)
class SlackCredentials:
    """The checked secrets, as plain strings, kept out of logs and reprs."""

    mode: Mode
    bot_token: str
    app_token: str | None
    signing_secret: str | None

    def __repr__(self) -> str:
        return f"SlackCredentials(mode={self.mode!r}, secrets=***)"


def _secret(value: object) -> str:
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return str(raw or "").strip()


def check_credentials(settings: Settings) -> SlackCredentials:
    """The mode and tokens to start with; a StartupError names the variable that is missing or wrong."""
    bot = _secret(settings.slack.bot_token)
    app_token = _secret(settings.slack.app_token)
    signing = _secret(settings.slack.signing_secret)
    if not bot:
        raise StartupError("SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) from your "
                           "Slack app's OAuth & Permissions page into the environment or .env")
    if not bot.startswith("xoxb-"):
        raise StartupError("SLACK_BOT_TOKEN must be a bot token starting with xoxb- (OAuth & Permissions, "
                           "Bot User OAuth Token); the value set does not start with xoxb-")
    if app_token:
        if not app_token.startswith("xapp-"):
            raise StartupError("SLACK_APP_TOKEN must be an app-level token starting with xapp- (Basic Information, "
                               "App-Level Tokens, scope connections:write); the value set does not start with xapp-")
        return SlackCredentials("socket", bot, app_token, signing or None)
    if not signing:
        raise StartupError("SLACK_SIGNING_SECRET is not set: HTTP mode (no SLACK_APP_TOKEN) verifies every request "
                           "with it; copy it from Basic Information, App Credentials. Or set SLACK_APP_TOKEN "
                           "to use Socket Mode instead")
    return SlackCredentials("http", bot, None, signing)


def api_url(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The Web API base URL: COACH_SLACK_API_URL if set, else the setting (default Slack's own)."""
    env = os.environ if environ is None else environ
    url = env.get(API_URL_ALIAS) or settings.slack.api_url
    return url if url.endswith("/") else url + "/"


async def verify_bot_token(client: AsyncWebClient) -> dict:
    """auth.test once at start-up, so a revoked or mistyped token fails now and not on the first teacher."""
    try:
        resp = await client.auth_test()
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}); copy the Bot User "
                           "OAuth Token again, and reinstall the app if its scopes changed") from None
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise StartupError(f"cannot reach the Slack Web API at {client.base_url} ({type(exc).__name__}); "
                           "check the network, or COACH_SLACK_API_URL") from None
    return dict(resp.data) if isinstance(resp.data, dict) else {}


def _problem(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


APP_TOKEN_TIMEOUT = 5.0  # seconds for apps.connections.open at start-up; a bad token fails well inside 15 s


async def verify_app_token(app_token: str, base_url: str, *, session: aiohttp.ClientSession | None = None,
                           timeout: float = APP_TOKEN_TIMEOUT) -> None:
    """apps.connections.open once, with a timeout, so a revoked or mistyped SLACK_APP_TOKEN fails at start-up.

    Without it the Socket Mode client retries a refused connection forever, and start-up never returns.
    """
    client = AsyncWebClient(base_url=base_url, session=session, timeout=max(int(timeout), 1))
    try:
        await asyncio.wait_for(client.apps_connections_open(app_token=app_token), timeout)
    except SlackApiError as exc:
        raise StartupError(f"Slack rejected SLACK_APP_TOKEN ({exc.response.get('error')}); create an app-level "
                           "token with the connections:write scope (Basic Information, App-Level Tokens) and "
                           "set it again") from None
    except asyncio.TimeoutError:
        raise StartupError(f"Slack did not answer apps.connections.open within {timeout:.0f} s, so SLACK_APP_TOKEN "
                           "could not be checked; check the network, or COACH_SLACK_API_URL") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise StartupError(f"cannot reach the Slack Web API at {base_url} to check SLACK_APP_TOKEN "
                           f"({type(exc).__name__}); check the network, or COACH_SLACK_API_URL") from None


def http_application(bolt: AsyncApp, signing_secret: str) -> web.Application:
    """The aiohttp application: POST /slack/events to Bolt, GET /healthz for a load balancer.

    The signature is checked on the raw bytes before anything parses them: an unsigned request
    gets 401 whatever its body, a signed but malformed one 400, a body over the limit 413
    (aiohttp's `client_max_size`), and none of them reaches Bolt or the core.
    """
    verifier = SignatureVerifier(signing_secret)

    async def events(request: web.Request) -> web.Response:
        raw = await request.read()  # raises 413 past client_max_size
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        try:
            signed = bool(timestamp and signature) and verifier.is_valid(raw, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            signed = False
        if not signed:
            return _problem(401, "invalid or missing Slack request signature")
        try:
            bolt_request = AsyncBoltRequest(body=raw.decode("utf-8"), query=request.query_string,
                                            headers=request.headers)  # type: ignore[arg-type]
        except Exception as exc:  # Bolt parses the body here: any shape it cannot read is the sender's fault
            log.warning("signed Slack request with a malformed body refused (%s)", type(exc).__name__)
            return _problem(400, "malformed Slack request body")
        if not isinstance(bolt_request.body, dict) or not bolt_request.body:
            log.warning("signed Slack request with an empty or non-object body refused")
            return _problem(400, "malformed Slack request body")
        bolt_resp = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_resp)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    web_app = web.Application(client_max_size=1024 * 1024)  # Slack payloads are small; refuse big bodies
    web_app.router.add_post(EVENTS_PATH, events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


class SlackService:
    """One running Slack adapter: built, checked, started and stopped in the same event loop."""

    def __init__(self, runtime: Runtime, *, host: str = "0.0.0.0", port: int = 3000, mode: Mode | None = None,
                 drafts_dir: Path | None = None, workers: int | None = None, app_token_verified: bool = False) -> None:
        self.runtime = runtime
        self.app_token_verified = app_token_verified  # `coach serve slack` checks it before the model loads
        self.host, self.port = host, port
        self.credentials = check_credentials(runtime.settings)
        self.mode: Mode = mode or self.credentials.mode
        if self.mode == "socket" and not self.credentials.app_token:
            raise StartupError("SLACK_APP_TOKEN is not set, and Socket Mode needs it (an xapp- app-level token "
                               "with connections:write, from Basic Information, App-Level Tokens)")
        if self.mode == "http" and not self.credentials.signing_secret:
            raise StartupError("SLACK_SIGNING_SECRET is not set, and HTTP mode needs it to verify requests")
        self.drafts_dir = drafts_dir
        # Template replies are CPU-bound (the embedder takes one thread at a time): a couple of
        # threads, so acks are not starved of the GIL. LLM replies mostly wait on the network.
        self.workers = workers or (8 if runtime.settings.llm_enabled else 2)
        self.slack: SlackApp | None = None
        self.identity: dict = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: AsyncSocketModeHandler | None = None

    async def start(self) -> None:
        """Check the token with Slack, then listen (HTTP) or connect (Socket Mode)."""
        base_url = api_url(self.runtime.settings)
        # One HTTP session for every Web API call: kept-alive connections instead of a new
        # connection (and TLS handshake) per chat.postMessage.
        self._session = aiohttp.ClientSession()
        try:
            self.identity = await verify_bot_token(
                AsyncWebClient(token=self.credentials.bot_token, base_url=base_url, session=self._session))
        except StartupError:
            await self._session.close()
            raise
        # The app's client has no token of its own: each request gets the bot token from the
        # auth.test answer above (see build_app), so no request waits on another auth.test.
        # Slack rate-limits posting (about one message a second per channel): a 429 is waited out
        # (Retry-After) and retried, rather than an answer being lost in a busy channel.
        retries = [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
        self.slack = build_app(self.runtime, client=AsyncWebClient(base_url=base_url, session=self._session,
                                                                   retry_handlers=retries),
                               signing_secret=self.credentials.signing_secret or "", auth_test=self.identity,
                               bot_token=self.credentials.bot_token, drafts_dir=self.drafts_dir, workers=self.workers)
        # Every process sweeps the inbound queue: events a killed process acked but never answered.
        self.slack.bridge.start_sweeper()
        if self.mode == "socket":
            if not self.app_token_verified:
                try:
                    await verify_app_token(self.credentials.app_token or "", base_url, session=self._session)
                except StartupError:
                    await self.stop()
                    raise
            self._socket = AsyncSocketModeHandler(self.slack.bolt, app_token=self.credentials.app_token)
            try:
                await asyncio.wait_for(self._socket.connect_async(), APP_TOKEN_TIMEOUT)
            except asyncio.TimeoutError:
                await self.stop()
                raise StartupError(f"the Socket Mode connection did not open within {APP_TOKEN_TIMEOUT:.0f} s; "
                                   "check the network (outbound WebSocket to Slack)") from None
            log.info("Slack Socket Mode connected as %s", self.identity.get("user"))
            return
        web_app = http_application(self.slack.bolt, self.credentials.signing_secret or "")
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise StartupError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                               "choose another with --port") from None
        if self._runner.addresses:  # the real port when asked for port 0
            self.port = self._runner.addresses[0][1]
        log.info("Slack HTTP events on http://%s:%s%s as %s", self.host, self.port, EVENTS_PATH,
                 self.identity.get("user"))

    async def stop(self) -> None:
        """Stop taking requests, let answers in flight finish (bounded), close connections."""
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.slack is not None:
            await self.slack.bridge.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def url(self) -> str:
        """Where Slack should send HTTP events (the Request URL is this behind your public address)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}{EVENTS_PATH}"

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Start, then serve until `stop` is set or the task is cancelled; always stop cleanly."""
        await self.start()
        try:
            await (stop.wait() if stop is not None else asyncio.Event().wait())
        finally:
            await self.stop()
