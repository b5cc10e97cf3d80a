"""Masking for the report's examples: student data, and any id or mention of a person.

Every example question the report shows passes through `Scrubber`: the masker
(`bot.privacy.masker.Masker`) for student data, and any user id, @-mention or platform mention
replaced, so a teacher's id or name cannot reach the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.handoff.context import shorten
from bot.privacy.masker import Masker

MAX_EXAMPLE_CHARS = 220

_SLACK_MENTION = re.compile(r"<[@#!][A-Za-z0-9]+(?:\|[^>]*)?>")
_TEAMS_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_AT_HANDLE = re.compile(r"(?<![\w\[.])@[A-Za-z0-9][\w.-]*")


class Scrubber:
    """Masks an example for the report: student data, and any id or mention of a person."""

    def __init__(self, user_ids: Iterable[str], masker: Masker | None = None) -> None:
        self.masker = masker or Masker()
        # Ids under three characters would mangle ordinary words and identify no one.
        ids = sorted({u for u in user_ids if u and len(u.strip()) >= 3}, key=len, reverse=True)
        # One pattern for every known id; edges are not letters, digits or '-' so "t-ana" is
        # found in "t-ana's" but not inside "text-analysis".
        self._ids = (re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(u) for u in ids) + r")(?![\w-])", re.IGNORECASE)
                     if ids else None)

    def __call__(self, text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
        text = _TEAMS_MENTION.sub("[PERSON]", text)
        text = _SLACK_MENTION.sub("[PERSON]", text)
        if self._ids is not None:
            text = self._ids.sub("[TEACHER]", text)
        text = self.masker.mask(text).text
        text = _AT_HANDLE.sub("[PERSON]", text)
        return shorten(text, limit)
