"""The inbound queue in HTTP mode, for real: an event is written down before Slack gets its 200, and
answered exactly once, even when the database is down at ack time or a process dies after acking.

The production aiohttp server (`SlackService`) on a loopback port, signed requests, the loopback
Web API stand-in, and a real state database: SQLite, and PostgreSQL when the test server is there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from adapters.slack.server import SlackService
from adapters.slack.translate import message_from_event
from adapters.wiring import Runtime, build_runtime
from bot.state.inbound import DONE, InboundQueue
from bot.settings import Settings, SlackSettings
from bot.state.database import StateDB, utcnow
from tests.conftest import CONFIG_DIR, FIXTURE_KB, free_port
from tests.slack_api_server import (
    BOT_USER_ID, SIGNING_SECRET, ServiceThread, SlackAPIServer, embedded_kb, event_body, im_message, post_to_app,
)

pytestmark = pytest.mark.server

BOT_TOKEN = "xoxb-1234-5678-loopbacktoken"
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def settings(tmp_path: Path, embedder, api: SlackAPIServer, state_url: str) -> Settings:
    slack = SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=api.base_url,
                          thinking_after_seconds=30.0)
    return Settings(data_dir=embedded_kb(FIXTURE_KB, embedder), database_url=state_url, config_dir=CONFIG_DIR,
                    slack=slack)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings, auto_starter=False)
    yield rt
    rt.close(flush_seconds=1.0)


@pytest.fixture
def app(runtime: Runtime, tmp_path: Path) -> Iterator[SlackService]:
    thread = ServiceThread(lambda: SlackService(runtime, host="127.0.0.1", port=0, mode="http",
                                                drafts_dir=tmp_path / "drafts"))
    service = thread.start()
    try:
        yield service
    finally:
        thread.stop()


def _posts(api: SlackAPIServer) -> int:
    return len([c for c in api.requests if c.method.startswith(("chat.", "hook:"))])


def _wait_done(queue: InboundQueue, key: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = queue.get(key)
        if row is not None and row.status == DONE:
            return
        time.sleep(0.1)
    raise AssertionError(f"{key} not done within {timeout}s: {queue.get(key)}")


def _left_by_a_killed_process(url: str, event: dict, key: str, *, answer_ts: str | None = None) -> InboundQueue:
    """What a process killed mid-answer leaves: the event recorded and claimed, its lease run out."""
    queue = InboundQueue(StateDB(url))  # the other process's own connection to the shared database
    message = message_from_event(event, bot_user_id=BOT_USER_ID)
    assert message is not None
    assert queue.record(key, {"message": message.model_dump(mode="json"), "channel": message.conversation_id,
                              "thread_ts": None})
    assert queue.claim(key, now=utcnow() - timedelta(seconds=queue.lease_seconds + 5)) is not None
    if answer_ts:
        queue.set_answer(key, answer_ts)
    return queue


def test_a_duplicate_retry_is_acked_and_answered_once(app: SlackService, api: SlackAPIServer,
                                                      state_url: str) -> None:
    body = event_body(im_message("how could my year 5s brainstorm together?"), event_id="EvDUP0001")
    assert post_to_app(app.url, body).status == 200
    assert post_to_app(app.url, body, headers=RETRY).status == 200  # any process, at once or later
    api.wait_for("chat.postMessage", 1)
    queue = InboundQueue(StateDB(state_url))
    _wait_done(queue, "slack:EvDUP0001")
    assert post_to_app(app.url, body, headers={**RETRY, "X-Slack-Retry-Num": "2"}).status == 200
    api.settle(quiet=0.5)
    assert len(api.calls("chat.postMessage")) == 1
    assert queue.get("slack:EvDUP0001").answer_ts  # the posted answer is written down


def test_an_unreachable_database_at_ack_time_answers_503_and_posts_nothing(
        app: SlackService, api: SlackAPIServer, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # The state database goes away (a real engine on a port nobody listens on).
    dead = create_engine(f"postgresql+psycopg://coach:pw@127.0.0.1:{free_port()}/coach",
                         connect_args={"connect_timeout": 2})
    monkeypatch.setattr(runtime.db, "_sessions", sessionmaker(dead, expire_on_commit=False))
    body = event_body(im_message("what is a good warm-up for a podcast lesson?"), event_id="EvDOWN0001")
    result = post_to_app(app.url, body)
    assert result.status == 503  # Slack retries a 5xx; a 200 here would lose the event
    api.settle(quiet=0.5)
    assert _posts(api) == 0
    monkeypatch.undo()  # the database is back; Slack's retry is recorded and answered
    assert post_to_app(app.url, body, headers=RETRY).status == 200
    api.wait_for("chat.postMessage", 1)
    api.settle(quiet=0.5)
    assert len(api.calls("chat.postMessage")) == 1
    dead.dispose()


def test_an_event_a_killed_process_left_is_answered_once_by_another_processs_sweeper(
        app: SlackService, api: SlackAPIServer, state_url: str) -> None:
    queue = _left_by_a_killed_process(state_url, im_message("how do I share a podcast with parents?"),
                                      "slack:EvKILLED01")
    api.wait_for("chat.postMessage", 1, timeout=20.0)  # the running service's sweeper, within seconds
    _wait_done(queue, "slack:EvKILLED01")
    api.settle(quiet=1.0)
    assert len(api.calls("chat.postMessage")) == 1
    row = queue.get("slack:EvKILLED01")
    assert row.answer_ts and row.attempts == 2


def test_an_event_already_answered_is_not_answered_again(app: SlackService, api: SlackAPIServer,
                                                         state_url: str) -> None:
    # Killed after posting the answer (and recording it) but before marking the event done.
    queue = _left_by_a_killed_process(state_url, im_message("how do I share a podcast with parents?"),
                                      "slack:EvANSWERD1", answer_ts="1515449999.000100")
    _wait_done(queue, "slack:EvANSWERD1")
    api.settle(quiet=0.5)
    assert _posts(api) == 0
    assert queue.get("slack:EvANSWERD1").answer_ts == "1515449999.000100"
