"""Slack in Socket Mode, for real: slack_sdk's aiohttp Socket Mode client opens a connection with
apps.connections.open and a WebSocket to the loopback stand-in, which pushes envelopes as Slack does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from adapters.slack.server import SlackService
from adapters.slack.translate import route_of, source_ids_of
from adapters.wiring import StartupError, build_runtime
from bot.settings import Settings, SlackSettings
from tests.conftest import CONFIG_DIR, FIXTURE_KB
from tests.slack_api_server import (
    ServiceThread, SlackAPIServer, app_mention, embedded_kb, event_body, slash_command,
)

pytestmark = pytest.mark.server

BOT_TOKEN = "xoxb-1234-5678-loopbacktoken"
APP_TOKEN = "xapp-1-A0COACH01-1234-loopback"


@pytest.fixture(scope="module")
def api() -> Iterator[SlackAPIServer]:
    with SlackAPIServer() as server:
        yield server


@pytest.fixture(scope="module")
def socket_settings(tmp_path_factory: pytest.TempPathFactory, embedder, api: SlackAPIServer) -> Settings:
    state = tmp_path_factory.mktemp("slack-socket") / "state.db"
    return Settings(data_dir=embedded_kb(FIXTURE_KB, embedder), database_url=f"sqlite:///{state}", config_dir=CONFIG_DIR,
                    slack=SlackSettings(bot_token=BOT_TOKEN, app_token=APP_TOKEN, api_url=api.base_url,
                                        thinking_after_seconds=30.0))  # no indicator: answers are asserted directly


@pytest.fixture(scope="module")
def connected(socket_settings: Settings, api: SlackAPIServer) -> Iterator[SlackService]:
    runtime = build_runtime(socket_settings, auto_starter=False)
    thread = ServiceThread(lambda: SlackService(runtime))
    service = thread.start()
    try:
        yield service
    finally:
        thread.stop()
        runtime.close(flush_seconds=1.0)


def _start_fails(settings: Settings) -> None:
    """Start a service that must fail; the runtime (and its delivery worker) is closed either way."""
    runtime = build_runtime(settings, auto_starter=False, deliver=False)
    try:
        ServiceThread(lambda: SlackService(runtime)).start()
    finally:
        runtime.close()


def test_socket_mode_is_chosen_by_the_app_token_and_connects(connected: SlackService, api: SlackAPIServer) -> None:
    assert connected.mode == "socket"
    opened = api.calls("apps.connections.open")
    assert opened and {c.token_kind for c in opened} == {"xapp"}  # the app-level token opens the socket; the bot token posts
    assert api.wait_for_socket()


def test_event_over_the_socket_is_acked_and_answered_once(connected: SlackService, api: SlackAPIServer) -> None:
    api.reset()
    event = app_mention("how can my year 5s brainstorm together on padlet?")
    payload = json.loads(event_body(event, event_id="Ev0SOCKET01"))
    envelope = api.send_envelope(payload)
    assert api.wait_for_ack(envelope)["envelope_id"] == envelope
    [answer] = api.wait_for("chat.postMessage")
    assert answer.token_kind == "xoxb"
    assert answer.body["thread_ts"] == event["ts"]
    assert route_of(answer.body["blocks"]) == "coach"
    assert source_ids_of(answer.body["blocks"])[0] == "shared-wall-brainstorm"
    # Slack re-sends an envelope it thinks was lost: acked again, answered once.
    retry = api.send_envelope(payload, retry_attempt=1)
    api.wait_for_ack(retry)
    api.settle(quiet=0.5)
    assert len(api.calls("chat.postMessage")) == 1


def test_slash_command_over_the_socket(connected: SlackService, api: SlackAPIServer) -> None:
    api.reset()
    form = dict(parse_qsl(slash_command("  ", response_url=api.response_url("sock"))))
    envelope = api.send_envelope(form, envelope_type="slash_commands")
    ack = api.wait_for_ack(envelope)
    assert "/coach how could" in ack["payload"]["text"]  # usage comes back in the ack itself


def test_revoked_bot_token_fails_at_start_up(socket_settings: Settings, api: SlackAPIServer) -> None:
    api.fail_next("auth.test", "invalid_auth")
    with pytest.raises(StartupError, match=r"SLACK_BOT_TOKEN \(invalid_auth\)"):
        _start_fails(socket_settings)


def test_unreachable_api_fails_at_start_up(socket_settings: Settings, tmp_path: Path) -> None:
    from tests.conftest import free_port

    settings = socket_settings.model_copy(update={"slack": socket_settings.slack.model_copy(
        update={"api_url": f"http://127.0.0.1:{free_port()}/api/"})})
    with pytest.raises(StartupError, match="cannot reach the Slack Web API"):
        _start_fails(settings)
