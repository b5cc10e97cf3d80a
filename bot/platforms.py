"""What each chat platform can do, as the core asks it: capabilities, not names.

The core never compares a platform's name: it asks `platforms.can(message.platform,
Capability.TELL_LATER)`. Each adapter package declares its own name and capabilities
(`adapters/slack/__init__.py`, `adapters/teams/__init__.py`); the composition root
(`adapters/wiring.py`) declares them here once, at import. A platform nobody declared
(the terminal, replay) can do none of these things.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Capability(StrEnum):
    """Something a platform can do that changes what the core says or records (add one when the core asks)."""

    # A bot process of this platform can message a teacher later (a person claimed or resolved their
    # ticket), even when the process that took the message has no notifier of its own.
    TELL_LATER = "tell_later"


class Platforms:
    """The registry: platform name to the capabilities its adapter declared."""

    def __init__(self) -> None:
        self._capabilities: dict[str, frozenset[Capability]] = {}

    def declare(self, platform: str, capabilities: Iterable[Capability]) -> None:
        """Record what `platform` can do (declaring again replaces the earlier declaration)."""
        self._capabilities[platform] = frozenset(capabilities)

    def can(self, platform: str, capability: Capability) -> bool:
        """True when the adapter for `platform` declared `capability`."""
        return capability in self._capabilities.get(platform, frozenset())

    def with_capability(self, capability: Capability) -> frozenset[str]:
        """Every declared platform that can do `capability`."""
        return frozenset(p for p, caps in self._capabilities.items() if capability in caps)

    def declared(self) -> frozenset[str]:
        """Every platform an adapter declared."""
        return frozenset(self._capabilities)


# One registry per process, like the settings: filled by adapters/wiring.py, read by the core.
platforms = Platforms()
