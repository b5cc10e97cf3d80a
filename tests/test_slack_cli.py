"""`coach serve slack` as a process: clear start-up errors, and the real HTTP-mode server answering,
including a retry that lands on a second process sharing the state database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.slack.server import SlackService
from adapters.slack.translate import route_of
from adapters.wiring import build_runtime
from bot.settings import Settings, SlackSettings
from tests.conftest import CONFIG_DIR, FIXTURE_KB
from tests.slack_api_server import (
    SIGNING_SECRET, ServiceThread, SlackAPIServer, embedded_kb, event_body, im_message, post_to_app,
)

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[1]
BOT_TOKEN = "xoxb-1234-5678-loopbacktoken"


def _env(**values: str) -> dict[str, str]:
    """A clean environment: no Slack or COACH_ variables leak in from the developer's shell or .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACH_"))}
    env.update({"COACH_ENV_FILE": os.devnull, "PYTHONUNBUFFERED": "1", **values})
    return env


@pytest.mark.parametrize("env, variable", [
    ({}, "SLACK_BOT_TOKEN is not set"),
    ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN must be a bot token starting with xoxb-"),
    ({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xoxb-wrong-kind"}, "SLACK_APP_TOKEN must be an app-level"),
    ({"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_SIGNING_SECRET is not set"),
], ids=["no-bot-token", "user-token", "app-token-kind", "http-without-secret"])
def test_start_up_errors_name_the_variable_and_exit_2(tmp_path: Path, env: dict[str, str], variable: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The real `coach` group in-process (CoachGroup turns StartupError into exit 2); a subprocess
    # per case would cost seconds each, and `served` below already runs the real process.
    from click.testing import CliRunner

    from adapters import cli

    # Build a clean environment: no Slack or COACH_ variables from the developer's shell.
    for name in [k for k in os.environ if k.startswith(("SLACK_", "COACH_"))]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(cli.main, ["serve", "slack"],
                                env={"COACH_ENV_FILE": os.devnull, "COACH_DATA_DIR": str(tmp_path), **env})
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())  # rich wraps long lines
    assert variable in message
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a traceback
    for secret in env.values():
        assert secret not in result.output  # the wrong value is never echoed


@pytest.fixture
def shared_data(embedder) -> Path:
    return embedded_kb(FIXTURE_KB, embedder)


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    """One state database for the served process and the in-test replica (as two replicas share one)."""
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def api() -> Iterator[SlackAPIServer]:
    with SlackAPIServer() as server:
        yield server


@pytest.fixture
def served(shared_data: Path, state_url: str, api: SlackAPIServer) -> Iterator[str]:
    """`coach serve slack --port 0` as a process; yields its /slack/events URL."""
    env = _env(COACH_DATA_DIR=str(shared_data), COACH_DATABASE_URL=state_url, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               COACH_SLACK_API_URL=api.base_url, COACH_SLACK__THINKING_AFTER_SECONDS="30")
    proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "slack", "--port", "0",
                             "--host", "127.0.0.1"], cwd=ROOT, env=env, text=True, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    try:
        url = None
        deadline = time.monotonic() + 60
        lines: list[str] = []
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
            if "Slack ready" in line and m:
                url = f"http://127.0.0.1:{m.group(1)}/slack/events"
        assert url, f"coach serve slack did not report ready: {''.join(lines)}"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, "SIGTERM should stop the server cleanly"


def test_serve_slack_http_answers_and_a_retry_to_another_process_is_not_answered_twice(
        served: str, shared_data: Path, state_url: str, api: SlackAPIServer) -> None:
    # This process runs a second replica on the same state database as the served process.
    settings = Settings(data_dir=shared_data, database_url=state_url, config_dir=CONFIG_DIR,
                        slack=SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=api.base_url,
                                            thinking_after_seconds=30.0))
    second = build_runtime(settings, auto_starter=False)
    replica = ServiceThread(lambda: SlackService(second, host="127.0.0.1", port=0, mode="http"))
    local = replica.start()
    try:
        event = im_message("how do I make a quick exit ticket in google forms?", channel="D0CLITEST1")
        first = post_to_app(served, event_body(event, event_id="Ev0CLI00001"))
        assert first.status == 200
        [answer] = api.wait_for("chat.postMessage", timeout=30)
        assert answer.body["channel"] == "D0CLITEST1" and route_of(answer.body["blocks"]) == "coach"
        assert api.calls("auth.test")[0].token_kind == "xoxb"  # COACH_SLACK_API_URL reached the stand-in
        retry = post_to_app(local.url, event_body(event, event_id="Ev0CLI00001"),
                            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        assert retry.status == 200
        api.settle(quiet=0.5)
        assert len(api.calls("chat.postMessage")) == 1
    finally:
        replica.stop()
        second.close(flush_seconds=1.0)
