"""A tool glossary: teachers name tools, the knowledge base talks about what tools do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml


# Tool names that are also ordinary words or teaching ideas: "flip" the classroom, work "in teams",
# a blank "canvas". These count as the tool only when written as a product name or used like one.
AMBIGUOUS = frozenset({"flip", "canvas", "teams", "forms", "clips", "anchor", "scratch", "excel", "mural",
                       "gemini", "claude", "copilot", "lino", "loom", "sphero"})
# "on Flip", "using flip", "post it to flip": what a tool is used with.
_TOOL_BEFORE = re.compile(r"(?:\b(?:on|onto|via|using|use|used|uses|through|into|in|open|opens|opened|log ?into|"
                          r"upload(?:ed)? to|post(?:ed)? (?:it |them )?(?:on|to)|set up|app)\s+)$", re.I)
# "a Flip video", "flip account", "Canvas course": what a tool makes or holds.
_TOOL_AFTER = re.compile(r"^\s+(?:video|videos|app|account|accounts|grid|topic|topics|response|responses|recording|"
                         r"recordings|link|links|code|course|courses|page|pages|assignment|assignments|quiz|quizzes|"
                         r"form|channel|channels|chat|login|site|classroom|class|project|projects)\b", re.I)
# "in teams", "on scratch paper": the ordinary word even after a tool preposition, unless written as a name.
_LOWER_PREPOSITIONS = re.compile(r"\b(?:in|into|through)\s+$", re.I)


def read_as_tool(text: str, start: int, end: int) -> bool:
    """Whether the ambiguous name at text[start:end] means the tool: a capitalised name inside a sentence,
    or a name used with a tool verb or noun ("on flip", "a Flip video"); "flip my classroom" is the idea."""
    word = text[start:end]
    before, after = text[:start], text[end:]
    if _TOOL_AFTER.match(after):
        return True
    sentence_start = not before.strip() or before.rstrip()[-1] in ".!?\n:;\"("
    if word[:1].isupper() and not sentence_start:
        return True
    return bool(_TOOL_BEFORE.search(before)) and not _LOWER_PREPOSITIONS.search(before)


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

    def tools(self, text: str) -> list[str]:
        """The tools `text` names, lower-cased, in order; an ambiguous name counts only when read as the tool."""
        if self._pattern is None:
            return []
        seen: list[str] = []
        for match in self._pattern.finditer(text):
            name = match.group(1).lower()
            if name in AMBIGUOUS and not read_as_tool(text, match.start(1), match.end(1)):
                continue
            if name not in seen:
                seen.append(name)
        return seen

    def expand(self, text: str, *, as_used: bool = False) -> str:
        """The plain words for the tools named in `text` (empty when none are). With `as_used`, an ambiguous
        name adds its words only when it is used as the tool (retrieval); without, every name does, as the
        shipped triage model was trained (changing that means re-shipping it)."""
        if self._pattern is None:
            return ""
        names = self.tools(text) if as_used else [m.group(1).lower() for m in self._pattern.finditer(text)]
        seen: list[str] = []
        for name in names:
            words = self.terms[name]
            if words not in seen:
                seen.append(words)
        return " ".join(seen)

    def disambiguated(self, text: str) -> str:
        """`text` with each ambiguous name that is read as the tool replaced by its plain words, so a search
        is not pulled toward the idea that shares its spelling ("on Flip" -> "on student video responses")."""
        if self._pattern is None:
            return text

        def swap(match: re.Match[str]) -> str:
            name = match.group(1).lower()
            if name in AMBIGUOUS and read_as_tool(match.string, match.start(1), match.end(1)):
                return self.terms[name]
            return match.group(0)

        return self._pattern.sub(swap, text)

    def expanded(self, text: str, *, as_used: bool = False) -> str:
        """`text` with the plain words for the tools it names added in brackets (what is embedded)."""
        expansion = self.expand(text, as_used=as_used)
        return f"{text} ({expansion})" if expansion and not text.endswith(f"({expansion})") else text
