"""Microsoft Teams adapter: Bot Framework activities in, Adaptive Cards out.

`translate` holds the pure functions, `bot` the ActivityHandler, `server` the aiohttp
endpoint, `proactive` the notifier the handoff side calls, `references` the stored
conversation references. Nothing here decides a route; `Coach` does.
"""

from __future__ import annotations

from bot.platforms import Capability

PLATFORM = "teams"
# What a Teams bot process can do; adapters/wiring.py declares it to the core's registry.
CAPABILITIES = frozenset({Capability.TELL_LATER})
