"""The Bolt app, built in one place: its listeners ack at once, and the work follows.

The listeners live by concern: adapters.slack.events (the inbound-queue middleware and messages),
.commands (/coach, /coach-kb), .actions (buttons, the knowledge-base shortcut), and the worker
they share, adapters.slack.worker. Every listener acks first (Slack's three seconds) and then does
its work in the same asyncio task, which Bolt runs after the response has gone
(`process_before_response=False`, Bolt's mode for a long-running server). Lazy listeners were
measured and left out: to start one, Bolt deep-copies the whole request and context, about two
thirds of the CPU an ack costs, which showed in the burst benchmark (benchmarks/slack_ack.py).
They exist for FaaS hosts, where nothing may run after the response; `coach serve slack` is a
long-running process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import actions, commands, events
from adapters.slack.commands import COMMAND, KB_COMMAND
from adapters.slack.worker import Bridge
from adapters.wiring import Runtime

log = logging.getLogger(__name__)

__all__ = ["COMMAND", "KB_COMMAND", "Bridge", "SlackApp", "build_app"]


@dataclass
class SlackApp:
    """The Bolt app and the bridge its listeners use."""

    bolt: AsyncApp
    bridge: Bridge


class _TokenFromEnvironmentIgnored(logging.Filter):
    """AsyncApp reads SLACK_BOT_TOKEN itself and warns that the client's token wins; here it is the same token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


async def _ignore() -> None:
    """Any other event: Bolt has acknowledged it already, so Slack does not retry it."""


def build_app(runtime: Runtime, *, client: AsyncWebClient, signing_secret: str = "",
              auth_test: Mapping[str, Any] | None = None, bot_token: str | None = None,
              drafts_dir: Path | None = None, workers: int = 2) -> SlackApp:
    """The Bolt app with every listener registered.

    `client` carries the API base URL (and the bot token, unless `auth_test` is given). With
    `auth_test` (the start-up auth.test answer) and `bot_token`, requests are authorized from that
    answer: Bolt's default calls auth.test on the first request, and a burst arriving at a fresh
    process would make one call per request before the cache fills.
    """
    bridge = Bridge(runtime, drafts_dir=drafts_dir, workers=workers)
    options: dict[str, Any] = {}
    if auth_test is not None:
        known = AuthorizeResult.from_auth_test_response(auth_test_response=auth_test, bot_token=bot_token)

        async def authorize() -> AuthorizeResult:
            return known

        options["authorize"] = authorize
    # process_before_response=False: Bolt answers Slack as soon as ack() is called (events are
    # acked before the listener even starts) and the listener's task carries on with the work.
    bolt_log = logging.getLogger("adapters.slack.bolt")
    quiet = _TokenFromEnvironmentIgnored()
    bolt_log.addFilter(quiet)
    try:
        app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False,
                       logger=bolt_log, **options)
    finally:
        bolt_log.removeFilter(quiet)

    bridge.sweep_client = AsyncWebClient(token=client.token or bot_token, base_url=client.base_url,
                                         session=client.session, retry_handlers=client.retry_handlers)

    bridge.session = client.session
    events.register(app, bridge)
    commands.register(app, bridge)
    actions.register(app, bridge)

    # Any other event an admin subscribed to is acknowledged, so Slack does not retry it.
    app.event(re.compile(".*"))(_ignore)

    @app.error
    async def on_error(error: Exception, body: dict) -> None:
        # Type and the payload's kind only: bodies carry teachers' words, headers carry secrets.
        log.error("Slack listener failed on %s: %s: %s", body.get("type") if isinstance(body, dict) else "?",
                  type(error).__name__, error)

    return SlackApp(app, bridge)
