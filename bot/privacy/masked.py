"""What a masked text carries: the text, and the local mapping back to what was hidden."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Masked:
    """Masked text and the local mapping back to the original spans.

    `keys` maps a salted hash of each (kind, value) to its placeholder: it is what an escalation
    stores, so the same person keeps the same placeholder in every message of one ticket without
    the value itself being stored.
    """

    text: str
    mapping: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    # With a seed (an escalation's id), a placeholder is derived from the seed and the value, so
    # every e-mail, webhook and card of one ticket shows the same person as the same [NAME-xxxx].
    seed: str | None = None

    def unmask(self, text: str) -> str:
        """Put the original spans back (only ever on the school's side)."""
        for placeholder in sorted(self.mapping, key=len, reverse=True):
            text = text.replace(placeholder, self.mapping[placeholder])
        return text

    @classmethod
    def from_keys(cls, keys: dict[str, str] | None) -> Masked:
        """Placeholders recorded earlier (an escalation's), to be reused and extended."""
        return cls("", {}, dict(keys or {}))
