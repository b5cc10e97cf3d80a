"""The attack table: what a stranger can send the running servers, and what must come of it.

Both servers run for real on loopback (Slack HTTP through slack-bolt on `SlackService`, Teams
through botbuilder's CloudAdapter on the production aiohttp app), with the Slack Web API and
Bot Connector stand-ins recording everything the bot sends. Each row says what is sent and
the status it must get; every row also checks that nothing reached the core (no turn recorded,
no escalation changed), nothing was posted or redrawn, and nothing was logged above WARNING.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.delivery.teams_channel import CLAIM, RESOLVE
from adapters.wiring import Runtime, build_runtime
from bot.handoff.escalations import EscalationRow
from bot.models import InboundMessage
from bot.settings import Settings, TeamsSettings
from bot.state.memory import TurnRow
from tests.bot_connector_server import BotConnectorServer, TeamsActivities
from tests.conftest import CONFIG_DIR, FIXTURE_KB
from tests.slack_api_server import SIGNING_SECRET, SlackAPIServer, block_actions, embedded_kb, event_body, im_message
from tests.test_slack_http import FORM, INTEGRATOR, RunningApp, app, drafts_dir, kb_data_dir, runtime, settings  # noqa: F401
from tests.test_slack_http import slack_overrides  # noqa: F401
from tests.test_teams_server import APP_ID, start

pytestmark = pytest.mark.server

INTEGRATORS = "C0INTEGRAT"
TEAMS_CHANNEL = "19:integrators@thread.tacv2"
STAFFROOM = "19:staffroom@thread.tacv2"


# -- what every row checks -----------------------------------------------------------------------

def turns(runtime: Runtime) -> int:
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(TurnRow))


def escalation_state(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.db.session() as s:
        return [(r.id, r.status, r.claimed_by, r.resolved_by, len(r.details or []))
                for r in s.scalars(select(EscalationRow).order_by(EscalationRow.id)).all()]


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno > logging.WARNING]


def open_handoff(runtime: Runtime, platform: str, conversation: str) -> int:
    """A teacher's request for a person, straight through the core: the escalation under attack."""
    reply = runtime.coach.handle(InboundMessage(platform=platform, conversation_id=conversation,
                                                user_id="U2147483697", text="can I speak to a human integrator please"))
    assert reply.handoff is not None
    return int(reply.handoff.ticket.split("-")[1])


def settle_outbox(runtime: Runtime, timeout: float = 10.0) -> None:
    """Wait for the delivery worker to send what the handoff queued (so later requests are the attack's)."""
    if runtime.delivery is None:
        return
    deadline = time.monotonic() + timeout
    while runtime.delivery.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runtime.delivery.outbox.pending(), runtime.delivery.outbox.pending()


# -- Slack ------------------------------------------------------------------------------------------

def _raw_post(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _signed(data: bytes, *, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + data, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


EVENT = event_body(im_message("how do I make a quick exit ticket in google forms?")).encode()
JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": FORM}

# (row, body, headers builder, expected status)
SLACK_BODIES: list[tuple[str, bytes, Any, int]] = [
    ("unsigned event", EVENT, lambda b: JSON_TYPE, 401),
    ("unsigned malformed JSON", b"{not json", lambda b: JSON_TYPE, 401),
    ("unsigned malformed form", b"payload=%7Bnot-json", lambda b: FORM_TYPE, 401),
    ("signed with another secret", EVENT, lambda b: {**JSON_TYPE, **_signed(b, secret="guessed")}, 401),
    ("timestamp not a number", EVENT, lambda b: {**JSON_TYPE, "X-Slack-Request-Timestamp": "soon",
                                                 "X-Slack-Signature": "v0=00"}, 401),
    ("signed malformed JSON", b"{not json", lambda b: {**JSON_TYPE, **_signed(b)}, 400),
    ("signed JSON array", b"[1, 2, 3]", lambda b: {**JSON_TYPE, **_signed(b)}, 400),
    ("signed form, payload not JSON", b"payload=%7Bnot-json", lambda b: {**FORM_TYPE, **_signed(b)}, 400),
    # slack_sdk's verifier signs text: a body that is not UTF-8 cannot be verified, so it is unsigned.
    ("signed, not UTF-8", b"\xff\xfe{\x00", lambda b: {**JSON_TYPE, **_signed(b)}, 401),
    ("unsigned 2 MB body", b"{" + b" " * (2 * 1024 * 1024) + b"}", lambda b: JSON_TYPE, 413),
    ("signed 2 MB body", b"{" + b" " * (2 * 1024 * 1024) + b"}", lambda b: {**JSON_TYPE, **_signed(b)}, 413),
]


@pytest.mark.parametrize("row,body,headers,status", SLACK_BODIES, ids=[r[0] for r in SLACK_BODIES])
def test_slack_bad_bodies(app: RunningApp, runtime: Runtime, caplog: pytest.LogCaptureFixture,
                          row: str, body: bytes, headers: Any, status: int) -> None:
    caplog.set_level(logging.INFO)
    before = (turns(runtime), escalation_state(runtime))
    assert _raw_post(app.url, body, headers(body)) == status, row
    app.api.settle()
    assert [c.method for c in app.api.requests if c.method != "auth.test"] == []
    assert (turns(runtime), escalation_state(runtime)) == before
    assert loud(caplog) == []


def _handoff_message(escalation_id: int) -> dict[str, Any]:
    buttons = [{"type": "button", "action_id": a, "value": str(escalation_id), "text": {"type": "plain_text", "text": a}}
               for a in ("handoff_claim", "handoff_resolve")]
    return {"ts": "1700000099.000001", "text": "New handoff",
            "blocks": [{"type": "actions", "elements": buttons}]}


SLACK_FORGED = [
    ("teacher claims in the integrators' channel", "handoff_claim", "U0TEACHER1", INTEGRATORS),
    ("teacher resolves in the integrators' channel", "handoff_resolve", "U0TEACHER1", INTEGRATORS),
    ("teacher claims from a DM", "handoff_claim", "U0TEACHER1", "D024BE91L"),
    ("teacher resolves from a class channel", "handoff_resolve", "U0TEACHER1", "C0CLASSRM1"),
]


@pytest.mark.parametrize("slack_overrides", [{"integrator_channel": INTEGRATORS}])
@pytest.mark.parametrize("row,action,user,channel", SLACK_FORGED, ids=[r[0] for r in SLACK_FORGED])
def test_slack_forged_claims_and_resolves_change_nothing(app: RunningApp, runtime: Runtime,
                                                         caplog: pytest.LogCaptureFixture,
                                                         row: str, action: str, user: str, channel: str) -> None:
    escalation_id = open_handoff(runtime, "slack", "D0ATTACK01")
    settle_outbox(runtime)
    app.api.settle()
    app.api.reset()
    caplog.set_level(logging.INFO)
    before = escalation_state(runtime)
    result = app.send(block_actions(_handoff_message(escalation_id), action, str(escalation_id), user=user,
                                    channel=channel, response_url=app.api.response_url("refusal")),
                      content_type=FORM)
    assert result.status == 200, row
    [told] = app.api.wait_for("hook:refusal")  # the clicker is told why, privately
    assert "nothing changed" in told.body["text"] and told.body.get("response_type") == "ephemeral"
    app.api.settle()
    assert escalation_state(runtime) == before
    assert app.api.calls("chat.update") == [] and app.api.calls("chat.postMessage") == []
    assert app.api.calls("views.open") == []  # no Resolve note is asked of someone who may not resolve
    assert loud(caplog) == []


# -- Teams ------------------------------------------------------------------------------------------

def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(service_url: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": service_url,
            "nbf": now - 10, "exp": now + 3600}


TOKENS = {
    "no Authorization header": lambda url: None,
    "Basic credentials": lambda url: "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "bearer garbage": lambda url: "Bearer not-a-jwt",
    "alg=none token": lambda url: "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(url)) + ".",
    "alg=none token with a kid": lambda url: "Bearer " + _b64({"alg": "none", "kid": "x"}) + "." + _b64(_claims(url)) + ".",
    "HS256 token signed with the app id": lambda url: "Bearer " + jwt.encode(_claims(url), APP_ID, algorithm="HS256",
                                                                              headers={"kid": "guessed"}),
}


@pytest.fixture
def teams_kb(embedder) -> Path:
    return embedded_kb(FIXTURE_KB, embedder)


def _teams_runtime(tmp_path: Path, data_dir: Path, connector_url: str, **teams: Any) -> Runtime:
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{tmp_path / 'teams-state.db'}",
                        config_dir=CONFIG_DIR, teams=TeamsSettings(**teams),
                        outbox={"poll_seconds": 0.1, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2},
                        teams_channel={"service_url": connector_url, "conversation_id": TEAMS_CHANNEL},
                        access={"integrator": {"teams": ["aad-sam"]}})
    return build_runtime(settings, auto_starter=False)


@pytest.fixture
async def teams_server(request, tmp_path: Path, teams_kb: Path) -> AsyncIterator[tuple[str, Runtime, BotConnectorServer]]:
    """The Teams endpoint on loopback; `request.param` is the TeamsSettings (authenticated or not)."""
    async with BotConnectorServer() as connector:
        runtime = _teams_runtime(tmp_path, teams_kb, connector.url, **getattr(request, "param", {}))
        runner, url, _app = await start(runtime, connector)
        try:
            yield f"{url}/api/messages", runtime, connector
        finally:
            await runner.cleanup()
            runtime.close(flush_seconds=0.5)


AUTHENTICATED = {"app_id": APP_ID, "app_password": SecretStr("s3cr3t-never-logged")}


@pytest.mark.parametrize("teams_server", [AUTHENTICATED], indirect=True)
@pytest.mark.parametrize("body_kind", ["forged claim", "message", "malformed JSON", "oversized"])
@pytest.mark.parametrize("token", list(TOKENS))
async def test_teams_unauthenticated_requests_get_401(teams_server, caplog, token: str, body_kind: str) -> None:
    url, runtime, connector = teams_server
    escalation_id = await _in_thread(open_handoff, runtime, "teams", "a:1attack")
    acts = TeamsActivities(connector.url)
    caplog.set_level(logging.INFO)
    before = (turns(runtime), escalation_state(runtime), len(connector.requests))
    if body_kind == "forged claim":
        data = json.dumps(_teams_click(acts, TEAMS_CHANNEL, CLAIM, escalation_id, "sam"))
    elif body_kind == "message":
        data = json.dumps(acts.personal("can I talk to a real person please"))
    elif body_kind == "malformed JSON":
        data = "{not json"
    else:
        data = "{" + " " * (512 * 1024) + "}"
    headers = {"Content-Type": "application/json"}
    auth = TOKENS[token](connector.url)
    if auth:
        headers["Authorization"] = auth
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=headers) as response:
        answer = await response.json()
    assert response.status == 401 and "unauthorized" in answer["error"]
    assert (turns(runtime), escalation_state(runtime), len(connector.requests)) == before
    assert loud(caplog) == []
    assert all("s3cr3t-never-logged" not in r.getMessage() for r in caplog.records)


TEAMS_BODIES = [
    ("malformed JSON", "{not json", "application/json", 400),
    ("JSON array", "[1, 2]", "application/json", 400),
    ("activity without a type", json.dumps({"id": "1", "serviceUrl": "http://127.0.0.1:9/"}), "application/json", 400),
    ("text/plain body", "hello", "text/plain", 415),
    ("oversized body", "{" + " " * (512 * 1024) + "}", "application/json", 413),
]


@pytest.mark.parametrize("row,data,content_type,status", TEAMS_BODIES, ids=[r[0] for r in TEAMS_BODIES])
async def test_teams_bad_bodies(teams_server, caplog, row: str, data: str, content_type: str, status: int) -> None:
    url, runtime, connector = teams_server
    caplog.set_level(logging.INFO)
    before = (turns(runtime), escalation_state(runtime), len(connector.requests))
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=data, headers={"Content-Type": content_type}) as response:
        await response.read()
    assert response.status == status, row
    assert (turns(runtime), escalation_state(runtime), len(connector.requests)) == before
    assert loud(caplog) == []


def _teams_click(acts: TeamsActivities, channel: str, action: str, escalation_id: int, user: str) -> dict[str, Any]:
    if channel.startswith("19:"):
        like = acts.channel("", channel=channel, thread="1700000000001", mention=False)
    else:
        like = acts.personal("", conversation=channel)
    activity = acts.submit(like, action=action, turn_id="", reply_to="1700000000001", user=user,
                           user_name=user.title())
    activity["value"] = {"action": action, "escalation_id": str(escalation_id)}
    return activity


TEAMS_FORGED = [
    ("teacher claims in the integrators' channel", TEAMS_CHANNEL, CLAIM, "eve", True),
    ("teacher resolves in the integrators' channel", TEAMS_CHANNEL, RESOLVE, "eve", True),
    ("integrator's claim from another team's channel", STAFFROOM, CLAIM, "sam", False),
    ("teacher resolves from a personal chat", "a:1eve", RESOLVE, "eve", False),
]


@pytest.mark.parametrize("row,channel,action,user,told", TEAMS_FORGED, ids=[r[0] for r in TEAMS_FORGED])
async def test_teams_forged_claims_and_resolves_change_nothing(teams_server, caplog, row: str, channel: str,
                                                               action: str, user: str, told: bool) -> None:
    url, runtime, connector = teams_server
    escalation_id = await _in_thread(open_handoff, runtime, "teams", "a:1attack")
    await _in_thread(settle_outbox, runtime)
    caplog.set_level(logging.INFO)
    before = escalation_state(runtime)
    sent = len(connector.requests)
    acts = TeamsActivities(connector.url)
    async with aiohttp.ClientSession() as session, \
            session.post(url, json=_teams_click(acts, channel, action, escalation_id, user)) as response:
        await response.read()
    assert response.status in (200, 201), row
    assert escalation_state(runtime) == before
    new = connector.requests[sent:]
    assert [r for r in new if r.kind == "update"] == []  # no card redrawn, least of all at the caller's URL
    if told:  # the clicker in the integrators' channel hears why; anywhere else nothing is said at all
        assert len(new) == 1 and "nothing changed" in new[0].body.get("text", "")
    else:
        assert new == []
    assert loud(caplog) == []


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.to_thread(fn, *args)


# -- emulator mode is for this machine only ------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "coach.district.example"])
def test_emulator_mode_refuses_a_public_host(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from adapters import cli

    for name in [k for k in os.environ if k.startswith(("Microsoft", "COACH_"))]:
        monkeypatch.delenv(name)
    started = time.monotonic()
    result = CliRunner().invoke(cli.main, ["serve", "teams", "--host", host],
                                env={"COACH_ENV_FILE": os.devnull, "COACH_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"refusing to listen on {host}" in message
    assert "MicrosoftAppId" in message and "MicrosoftAppPassword" in message
    assert time.monotonic() - started < 10  # refused before the model or the knowledge base loads


def test_emulator_mode_on_loopback_and_authenticated_mode_anywhere_are_allowed() -> None:
    from adapters.teams.server import AUTHENTICATED as AUTH_MODE, EMULATOR, check_host
    from adapters.wiring import StartupError

    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_host(EMULATOR, host)
    check_host(AUTH_MODE, "0.0.0.0")
    with pytest.raises(StartupError, match="MicrosoftAppId"):
        check_host(EMULATOR, "0.0.0.0")


def test_compose_cannot_start_teams_without_credentials() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml").read_text())
    teams = compose["services"]["teams"]
    env = teams["environment"]
    # `${VAR:?message}`: Compose stops with the message when the variable is unset or empty.
    for name in ("MicrosoftAppId", "MicrosoftAppPassword"):
        assert env[name].startswith("${" + name + ":?"), env[name]
    assert "COACH_DATABASE_URL" in env  # the service's own map replaces the shared one: keep the rest


# -- Slack start-up: a bad app token fails fast, SIGTERM always stops ---------------------------------

APP_TOKEN = "xapp-1-A0LOOPBACK-1234-notarealtoken"


def _serve_slack(api: SlackAPIServer, data_dir: Path, state: Path) -> subprocess.Popen[str]:
    from tests.test_slack_cli import BOT_TOKEN as CLI_BOT_TOKEN, ROOT, _env

    env = _env(COACH_DATA_DIR=str(data_dir), COACH_DATABASE_URL=f"sqlite:///{state}", SLACK_BOT_TOKEN=CLI_BOT_TOKEN,
               SLACK_APP_TOKEN=APP_TOKEN, COACH_SLACK_API_URL=api.base_url)
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "slack"], cwd=ROOT, env=env, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int | None, str]:
    try:
        _out, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate(timeout=10)
        return None, err


@pytest.fixture
def slack_stand_in() -> Iterator[SlackAPIServer]:
    with SlackAPIServer() as server:
        yield server


@pytest.mark.parametrize("failure", ["invalid_auth", "no answer"])
def test_bad_app_token_exits_2_naming_it_within_15_s(slack_stand_in: SlackAPIServer, kb_data_dir: Path,
                                                      tmp_path: Path, failure: str) -> None:
    if failure == "no answer":
        slack_stand_in.delay("apps.connections.open", 60)
    else:
        slack_stand_in.fail_next("apps.connections.open", failure)
    started = time.monotonic()
    code, err = _finish(_serve_slack(slack_stand_in, kb_data_dir, tmp_path / "state.db"), 30)
    elapsed = time.monotonic() - started
    assert code == 2, err
    assert elapsed < 15, f"took {elapsed:.1f} s"
    print(f"exit 2 after {elapsed:.1f} s")
    assert "SLACK_APP_TOKEN" in " ".join(err.split()) and APP_TOKEN not in err
    assert "Traceback" not in err


def _wait_for(proc: subprocess.Popen[str], check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("when", ["serving", "waiting on Slack at start-up"])
def test_sigterm_stops_slack_within_10_s(slack_stand_in: SlackAPIServer, kb_data_dir: Path, tmp_path: Path,
                                         when: str) -> None:
    if when == "serving":
        proc = _serve_slack(slack_stand_in, kb_data_dir, tmp_path / "state.db")
        _wait_for(proc, lambda: slack_stand_in.socket_connected, 90)
    else:
        slack_stand_in.delay("auth.test", 120)  # Slack accepts the connection and never answers
        proc = _serve_slack(slack_stand_in, kb_data_dir, tmp_path / "state.db")
        _wait_for(proc, lambda: slack_stand_in.calls("auth.test"), 90)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = _finish(proc, 20)
    elapsed = time.monotonic() - started
    assert code is not None and elapsed < 10, f"still running {elapsed:.1f} s after SIGTERM: {err[-2000:]}"
    assert code == 0, err[-2000:]
    assert "Traceback" not in err


# -- knowledge files: no alias bombs, no links out of the folder ------------------------------------

GOOD_NOTE = """---
id: {id}
title: Exit tickets in Google Forms
kind: howto
tags: [forms]
subjects: [any]
grades: [3-5]
questions:
  - Which question shows you who needs help tomorrow?
{extra}---
Three short questions at the end of the lesson.
"""

BILLION_LAUGHS = "".join(
    [f"l0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n"]
    + [f"l{i}: &l{i} [{', '.join(['*l' + str(i - 1)] * 9)}]\n" for i in range(1, 10)])


@pytest.mark.parametrize("extra,field", [
    (BILLION_LAUGHS, "aliases"),
    ("owner: &who Sam\nreviewer: *who\n", "aliases"),
])
def test_yaml_aliases_are_refused_fast_and_small(tmp_path: Path, extra: str, field: str) -> None:
    import tracemalloc

    from knowledge.parser import load_folder

    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "bomb.md").write_text(GOOD_NOTE.format(id="bomb", extra=extra))
    (folder / "fine.md").write_text(GOOD_NOTE.format(id="fine", extra=""))
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = load_folder(folder)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 2 and peak < 100 * 1024 * 1024, (elapsed, peak)
    assert [e.id for e in result.entries] == ["fine"]
    [error] = result.errors
    assert error.path == "bomb.md" and "anchors and aliases" in error.message


def test_kb_validate_names_the_alias_bomb(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from adapters import cli

    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "bomb.md").write_text(GOOD_NOTE.format(id="bomb", extra=BILLION_LAUGHS))
    started = time.monotonic()
    result = CliRunner().invoke(cli.main, ["kb", "validate", str(folder)], env={"COACH_ENV_FILE": os.devnull})
    assert time.monotonic() - started < 2
    assert result.exit_code == 1, result.output
    assert "bomb.md" in result.output and "anchors and aliases" in " ".join(result.output.split())


def test_symlinks_out_of_the_knowledge_folder_are_refused(tmp_path: Path) -> None:
    from knowledge.parser import load_folder

    outside = tmp_path / "secrets"
    outside.mkdir()
    (outside / "passwd.md").write_text(GOOD_NOTE.format(id="stolen", extra=""))
    folder = tmp_path / "kb"
    (folder / "sub").mkdir(parents=True)
    (folder / "fine.md").write_text(GOOD_NOTE.format(id="fine", extra=""))
    (folder / "sub" / "escape.md").symlink_to(outside / "passwd.md")
    (folder / "again.md").symlink_to(folder / "fine.md")  # a link inside the folder is the same file, read once
    result = load_folder(folder)
    assert [e.id for e in result.entries] == ["fine"]
    [error] = result.errors
    assert error.path == "sub/escape.md" and "outside the knowledge folder" in error.message


def test_rendered_entries_read_back_without_aliases(tmp_path: Path) -> None:
    from knowledge.parser import load_folder, parse_text, render_entry

    entry = load_folder(FIXTURE_KB).entries[0]
    shared = ["any"]
    entry = entry.model_copy(update={"extra": {"a": shared, "b": shared}})  # one object twice: no &id001
    again, problems = parse_text(render_entry(entry), "again.md")
    assert again is not None and not [p for p in problems if p.severity == "error"]


# -- nothing invisible leaves the machine ---------------------------------------------------------

BIDI = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
FORMAT_CHARS = [BIDI, "\u2066", "\u2069", "\u200b", "\u200f", "\u00ad", "\ufeff"]


def test_format_characters_are_stripped_from_every_handoff_delivery(tmp_path: Path, kb_data_dir: Path) -> None:
    """E-mail (SMTP sink), webhook (loopback receiver), Slack channel card (Web API stand-in): no Cf survives."""
    import unicodedata

    from tests.webhook_receiver import SmtpSink, WebhookReceiver

    with SmtpSink() as smtp, WebhookReceiver(secret="hook-secret") as hook, SlackAPIServer() as api:
        settings = Settings(
            data_dir=kb_data_dir, database_url=f"sqlite:///{tmp_path / 'bidi.db'}", config_dir=CONFIG_DIR,
            slack={"bot_token": "xoxb-1-bidi", "api_url": api.base_url, "integrator_channel": INTEGRATORS},
            outbox={"poll_seconds": 0.1, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2},
            email={"host": "127.0.0.1", "port": smtp.port, "starttls": False, "from_addr": "coach@school.example",
                   "integrator_to": "team@school.example", "helpdesk_to": "help@school.example"},
            webhook={"url": hook.url, "secret": "hook-secret"})
        rt = build_runtime(settings, auto_starter=False)
        try:
            spoof = f"can I speak to a human integrator please {BIDI}gpj.exe{''.join(FORMAT_CHARS)} now"
            reply = rt.coach.handle(InboundMessage(platform="slack", conversation_id="D0BIDI0001",
                                                   user_id="U2147483697", user_name=f"Eve{BIDI}", text=spoof))
            assert reply.handoff is not None
            settle_outbox(rt)
            [mail] = smtp.wait_for(1)
            api.wait_for("chat.postMessage")
            parts = [str(mail["Subject"])] + [part.get_content() for part in mail.walk()
                                              if part.get_content_maintype() == "text"]
            sent = {"e-mail": "\n".join(parts),
                    "webhook": json.dumps([r.body for r in hook.requests], ensure_ascii=False),
                    "slack card": json.dumps([c.body for c in api.calls("chat.postMessage")], ensure_ascii=False)}
        finally:
            rt.close(flush_seconds=1)
    for where, body in sent.items():
        assert "gpj.exe" in body, where  # the words arrived...
        assert not [c for c in body if unicodedata.category(c) == "Cf"], where  # ...and nothing invisible with them
