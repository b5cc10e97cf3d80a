"""Text leaving the machine: Unicode format characters (category Cf) removed, in one place.

Right-to-left overrides, isolates, zero-width joiners and the like render invisibly and can make
`H-0042 resolved` read as something else in an e-mail subject, a webhook consumer or a card.
Every handoff delivery passes through `Outbox` (which applies this to each row's payload as it
is handed to a channel), and a card redrawn on a click applies it to its text.
"""

from __future__ import annotations

import unicodedata
from typing import TypeVar

T = TypeVar("T")


def strip_format_chars(text: str) -> str:
    """`text` without Unicode format characters (bidi controls, zero-width characters, soft hyphens)."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def outbound(value: T) -> T:
    """A copy of `value` (text, or JSON-like dicts and lists of it) with format characters stripped."""
    if isinstance(value, str):
        return strip_format_chars(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {outbound(k): outbound(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [outbound(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(outbound(v) for v in value)  # type: ignore[return-value]
    return value
