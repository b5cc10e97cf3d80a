"""Slack adapter: Bolt listeners that translate Slack events to `InboundMessage` and `Reply` to Block Kit.

- `translate`: pure functions in both directions, no network.
- `kb_draft`: the integrators' "Save to knowledge base" modal and the draft file it writes.
- `app`: the Bolt `AsyncApp` and its listeners (translate, `Coach.handle`, translate back).
- `server`: start-up checks and the two ways to run: Socket Mode, or HTTP on aiohttp.
- `command`: `coach serve slack`.
"""

from __future__ import annotations

import os
from typing import Any

from bot.platforms import Capability

PLATFORM = "slack"
# What a Slack bot process can do; adapters/wiring.py declares it to the core's registry.
CAPABILITIES = frozenset({Capability.TELL_LATER})
API_URL_ALIAS = "COACH_SLACK_API_URL"  # overrides slack.api_url, for every Slack client of this process


def api_url(settings: Any) -> str:
    """The Slack Web API base URL: `COACH_SLACK_API_URL` if set, else `slack.api_url`."""
    return os.environ.get(API_URL_ALIAS) or settings.slack.api_url
