"""A tool glossary: teachers name tools, the knowledge base talks about what tools do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml


class GlossaryError(ValueError):
    """The glossary file is unreadable or not a mapping of tool: words."""


class Glossary:
    """Adds plain words for every tool a query names ("padlet" -> "shared digital wall ...")."""

    def __init__(self, terms: dict[str, str]) -> None:
        self.terms = {k.lower().strip(): str(v) for k, v in terms.items() if str(k).strip()}
        # Longest names first, so "google classroom" wins over "classroom"-like shorter keys.
        names = sorted(self.terms, key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])", re.I) if names else None

    @classmethod
    def from_file(cls, path: Path) -> "Glossary":
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise GlossaryError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise GlossaryError(f"{path}: YAML syntax error: {exc}") from None
        if not isinstance(data, dict):
            raise GlossaryError(f"{path}: must be a mapping of tool: plain words")
        return cls({str(k): str(v) for k, v in data.items()})

    def expand(self, text: str) -> str:
        """The plain words for the tools named in `text` (empty when none are)."""
        if self._pattern is None:
            return ""
        seen: list[str] = []
        for match in self._pattern.finditer(text):
            words = self.terms[match.group(1).lower()]
            if words not in seen:
                seen.append(words)
        return " ".join(seen)

    def expanded(self, text: str) -> str:
        """`text` with the plain words for the tools it names added in brackets (what is embedded)."""
        expansion = self.expand(text)
        return f"{text} ({expansion})" if expansion and not text.endswith(f"({expansion})") else text
