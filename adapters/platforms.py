"""Each chat adapter's declared capabilities, handed to the core's registry (`bot.platforms`).

Called by every composition root (`build_runtime`, `build_delivery`, the command line) before the
core is asked anything; declaring twice is harmless.
"""

from __future__ import annotations

from adapters import slack, teams
from bot.platforms import platforms

ADAPTERS = (slack, teams)


def declare_platforms() -> None:
    """Tell the core what each chat platform can do, from each adapter package's own declaration."""
    for adapter in ADAPTERS:
        platforms.declare(adapter.PLATFORM, adapter.CAPABILITIES)
