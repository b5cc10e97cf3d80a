"""The Teams endpoint: an aiohttp app with `POST /api/messages` and `GET /healthz`.

With MicrosoftAppId and MicrosoftAppPassword set (and MicrosoftAppTenantId for a single-
tenant app) the Bot Framework authenticates every request and unauthenticated ones get 401.
With none set it runs in local emulator mode, for the Bot Framework Emulator on this
machine, and says so with a WARNING.

A teacher's message is recorded and the request answered at once (202; adapters/teams/worker.py
answers it afterwards through the proactive path), so a slow turn never makes the Bot Framework
deliver it again. Card clicks are answered inside the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any

import jwt
import requests
from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter
from sqlalchemy import text as sql_text

from adapters.teams import translate
from adapters.teams.auth import AUTHENTICATED, EMULATOR, auth_mode, make_adapter
from adapters.teams.bot import TeamsCoachBot
from adapters.delivery.checkin_senders import TeamsCheckinSender
from adapters.teams.proactive import TeamsNotifier
from adapters.teams.references import ReferenceStore
from adapters.teams.worker import ACK_NOTE, SWEEP_SECONDS, LEASE_SECONDS, AckNote, TeamsWorker
from adapters.wiring import Runtime, StartupError
from bot.state.inbound import InboundQueue, ProcessedEvents

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # a Teams activity is a few KB; refuse anything far larger

BOT_KEY = web.AppKey("bot", TeamsCoachBot)
ADAPTER_KEY = web.AppKey("adapter", CloudAdapter)
NOTIFIER_KEY = web.AppKey("notifier", TeamsNotifier)
WORKER_KEY = web.AppKey("worker", TeamsWorker)
RUNTIME_KEY = web.AppKey("runtime", Runtime)
MODE_KEY = web.AppKey("mode", str)


# The Bot Framework and Azure AD sign their tokens with RSA keys published by key id.
TOKEN_ALGORITHMS = frozenset({"RS256"})


def token_problem(authorization: str) -> str | None:
    """Why an Authorization header cannot carry a Bot Framework token (None when it might).

    Only the shape is checked here: a bearer JWT signed with RS256 naming its key. `alg=none`,
    HMAC-signed and garbage tokens are refused before the body is read or the SDK runs.
    """
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "this bot requires a Bot Framework token (Authorization: Bearer ...)"
    try:
        header = jwt.get_unverified_header(token.strip())
    except jwt.PyJWTError:
        return "the Authorization header is not a JWT"
    if header.get("alg") not in TOKEN_ALGORITHMS or not header.get("kid"):
        return f"token algorithm {str(header.get('alg'))[:20]!r} or key id not accepted"
    return None


def _problem(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _messages(request: web.Request) -> web.StreamResponse:
    """POST /api/messages: check the body, then hand it to the SDK (which authenticates it)."""
    app = request.app
    if app[MODE_KEY] == AUTHENTICATED:
        # Nothing about the body is told to a caller without a plausible token. The SDK verifies the
        # signature after reading the activity (it checks the token's serviceUrl claim against it).
        problem = token_problem(request.headers.get("Authorization", ""))
        if problem:
            log.warning("Teams request refused: %s", problem)
            return _problem(401, f"unauthorized: {problem}")
    if "application/json" not in request.headers.get("Content-Type", ""):
        return _problem(415, "Content-Type must be application/json (a Bot Framework activity)")
    raw = await request.read()
    try:
        body: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _problem(400, f"malformed activity JSON: {exc}")
    problem = translate.activity_problem(body)
    if problem:
        return _problem(400, problem)
    note = AckNote()  # the turn says here whether it queued the message (the SDK would answer 201)
    token = ACK_NOTE.set(note)
    try:
        response = await app[ADAPTER_KEY].process(request, app[BOT_KEY])
    except web.HTTPUnauthorized:
        return _problem(401, "unauthorized: this bot requires a valid Bot Framework token "
                             "(Authorization: Bearer ...)")
    except (PermissionError, KeyError, jwt.PyJWTError):  # PyJWT, or no signing key with the token's kid
        log.warning("Teams request refused: the Bot Framework token was not accepted")
        return _problem(401, "unauthorized: the Bot Framework token was not accepted")
    except requests.RequestException as exc:  # the Bot Framework's signing keys could not be fetched
        log.warning("Teams request not authenticated: cannot fetch the Bot Framework signing keys (%s)",
                    type(exc).__name__)
        return _problem(503, "cannot verify the token right now; try again")
    finally:
        ACK_NOTE.reset(token)
    if note.status is not None:
        return web.Response(status=int(note.status))
    return response if response is not None else web.Response(status=201)


async def _healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is up and the state database answers."""
    runtime = request.app[RUNTIME_KEY]

    def probe() -> None:
        with runtime.db.engine.connect() as conn:
            conn.execute(sql_text("SELECT 1"))

    try:
        await asyncio.get_running_loop().run_in_executor(None, probe)
    except Exception as exc:
        return web.json_response({"status": "unhealthy", "reason": f"state database: {type(exc).__name__}"},
                                 status=503)
    return web.json_response({"status": "ok", "platform": "teams", "mode": request.app[MODE_KEY]})


async def _bind_loop(app: web.Application) -> None:
    # send_text_sync() from other threads schedules onto this loop.
    app[NOTIFIER_KEY].bind_loop(asyncio.get_running_loop())
    # Every process sweeps the inbound queue: messages a killed process recorded but never answered.
    app[WORKER_KEY].start()


async def _stop_worker(app: web.Application) -> None:
    await app[WORKER_KEY].stop()


def build_app(runtime: Runtime, *, typing_after: float | None = None, sweep_seconds: float = SWEEP_SECONDS,
              lease_seconds: float = LEASE_SECONDS) -> web.Application:
    """The aiohttp application `coach serve teams` runs; tests start the very same app on loopback.

    `app[NOTIFIER_KEY]` is the TeamsNotifier for proactive messages through this app's adapter;
    `app[WORKER_KEY]` answers the queued messages (`sweep_seconds`, `lease_seconds`: its sweeper).
    """
    teams = runtime.settings.teams
    mode = auth_mode(teams)
    if mode == EMULATOR:
        log.warning("Teams adapter in LOCAL EMULATOR MODE: MicrosoftAppId and MicrosoftAppPassword are not set, "
                    "so requests to /api/messages are NOT authenticated. Use it only with the Bot Framework "
                    "Emulator on this machine; set both (and MicrosoftAppTenantId for a single-tenant app) "
                    "before Teams can reach it.")
    else:
        log.info("Teams adapter authenticating requests for app id %s (%s)", teams.app_id, teams.app_type)
    adapter = make_adapter(teams)
    references = ReferenceStore(runtime.db)
    kwargs: dict[str, Any] = {} if typing_after is None else {"typing_after": typing_after}
    app_id = teams.app_id if mode == AUTHENTICATED else None
    # Template replies are CPU-bound: a couple of threads; LLM replies mostly wait on the network.
    worker = TeamsWorker(runtime.coach, InboundQueue(runtime.db, lease_seconds=lease_seconds), adapter,
                         references=references, app_id=app_id, sweep_seconds=sweep_seconds,
                         workers=8 if runtime.settings.llm_enabled else 2, **kwargs)
    bot = TeamsCoachBot(runtime.coach, references=references, claim_event=ProcessedEvents(runtime.db).claim,
                        integrator_name=runtime.settings.handoff.integrator_name,
                        integrator_channel=runtime.settings.teams_channel.conversation_id,
                        service_url=runtime.settings.teams_channel.service_url, enqueue=worker.enqueue, **kwargs)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[BOT_KEY] = bot
    app[ADAPTER_KEY] = adapter
    app[RUNTIME_KEY] = runtime
    app[MODE_KEY] = mode
    app[WORKER_KEY] = worker
    app[NOTIFIER_KEY] = TeamsNotifier(adapter, references, app_id=app_id)
    # Check-ins go out through this app's adapter and loop, like the teachers' handoff notices.
    runtime.add_checkin_sender(TeamsCheckinSender(app[NOTIFIER_KEY]))
    app.router.add_post("/api/messages", _messages)
    app.router.add_get("/healthz", _healthz)
    app.on_startup.append(_bind_loop)
    app.on_cleanup.append(_stop_worker)
    return app


def default_host(mode: str) -> str:
    """Emulator mode listens on loopback only: an unauthenticated bot must not be reachable from the network."""
    return "127.0.0.1" if mode == EMULATOR else "0.0.0.0"


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def check_host(mode: str, host: str) -> None:
    """Emulator mode is unauthenticated, so it listens on loopback only; anything else is a start-up error."""
    if mode == EMULATOR and not is_loopback(host):
        raise StartupError(
            f"refusing to listen on {host} in local emulator mode: requests would not be authenticated. "
            "Set MicrosoftAppId and MicrosoftAppPassword (and MicrosoftAppTenantId for a single-tenant app) "
            "from the Azure Bot registration, or listen on 127.0.0.1 for the Bot Framework Emulator")


def run(runtime: Runtime, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted (what `coach serve teams` calls)."""
    mode = auth_mode(runtime.settings.teams)
    host = host or default_host(mode)
    check_host(mode, host)
    app = build_app(runtime)
    port = port or runtime.settings.teams.port
    log.info("Teams endpoint listening on http://%s:%d/api/messages (%s mode)", host, port, mode)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
