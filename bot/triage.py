"""Rule-based triage into the four routes; the phrases live in config/triage.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.models import Route


class TriageConfigError(ValueError):
    """config/triage.yaml is missing, malformed, or holds a pattern that does not compile."""


@dataclass(frozen=True)
class Decision:
    """Where a message goes and why."""

    route: Route
    category: str  # safeguarding, data_incident, human_request, frustration, complex, fault, account, smalltalk, out_of_scope, coaching
    reason: str
    urgent: bool = False


def _compile(patterns: Any, where: str) -> list[re.Pattern[str]]:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        raise TriageConfigError(f"{where}: must be a pattern or a list of patterns")
    out = []
    for i, pattern in enumerate(patterns):
        try:
            out.append(re.compile(str(pattern), re.IGNORECASE))
        except re.error as exc:
            raise TriageConfigError(f"{where}[{i}]: pattern does not compile: {exc}") from exc
    return out


_WORD = re.compile(r"[a-z0-9']+")


class Triage:
    """Decides a route from the message and the conversation so far, without a model."""

    def __init__(self, config: dict[str, Any], source: str = "triage config") -> None:
        try:
            self.safeguarding = _compile(config["safeguarding"], f"{source}: safeguarding")
            self.data_incident = _compile(config["data_incident"], f"{source}: data_incident")
            self.human_request = _compile(config["human_request"], f"{source}: human_request")
            self.frustration = _compile(config["frustration"], f"{source}: frustration")
            self.frustration_min_coach_turns = int(config.get("frustration_min_coach_turns", 1))
            self.complex = _compile(config["complex"], f"{source}: complex")
            helpdesk = config["helpdesk"]
            self.devices = _compile(helpdesk["devices"], f"{source}: helpdesk.devices")
            self.faults = _compile(helpdesk["faults"], f"{source}: helpdesk.faults")
            self.accounts = _compile(helpdesk["accounts"], f"{source}: helpdesk.accounts")
            self.not_fault = _compile(helpdesk.get("not_fault", []), f"{source}: helpdesk.not_fault")
            other = config["other"]
            self.smalltalk_words = {str(w).lower() for w in other["smalltalk_words"]}
            self.max_smalltalk_words = int(other.get("max_smalltalk_words", 10))
            self.out_of_scope = _compile(other["out_of_scope"], f"{source}: other.out_of_scope")
            self.lesson_framing = _compile(config.get("lesson_framing", []), f"{source}: lesson_framing")
            self.incident_markers = _compile(config.get("incident_markers", []), f"{source}: incident_markers")
        except KeyError as exc:
            raise TriageConfigError(f"{source}: missing section {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise TriageConfigError(f"{source}: malformed ({exc})") from None

    @classmethod
    def from_file(cls, path: Path) -> "Triage":
        """Load the phrases a school may edit."""
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TriageConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise TriageConfigError(f"{path}: YAML syntax error: {exc}") from None
        if not isinstance(config, dict):
            raise TriageConfigError(f"{path}: must be a mapping of sections")
        return cls(config, str(path))

    @staticmethod
    def _any(patterns: list[re.Pattern[str]], text: str) -> re.Match[str] | None:
        for pattern in patterns:
            match = pattern.search(text)
            if match:
                return match
        return None

    def decide(self, text: str, *, coach_turns: int = 0) -> Decision:
        """Route one message; `coach_turns` is how many coaching replies this conversation has had."""
        t = " ".join(text.replace("’", "'").split())
        hit = self._any(self.safeguarding, t)
        if hit and not (self._any(self.lesson_framing, t) and not self._any(self.incident_markers, t)):
            return Decision(Route.INTEGRATOR, "safeguarding", f"possible safeguarding concern ({hit.group(0).lower()})", True)
        if self._any(self.data_incident, t):
            return Decision(Route.INTEGRATOR, "data_incident", "possible student-data incident", True)
        if self._any(self.human_request, t):
            return Decision(Route.INTEGRATOR, "human_request", "the teacher asked for a person")
        if self._any(self.frustration, t) and coach_turns >= self.frustration_min_coach_turns:
            return Decision(Route.INTEGRATOR, "frustration", "coaching was not helping")
        fault = self._fault(t)
        if fault:
            return fault
        if self._any(self.complex, t):
            return Decision(Route.INTEGRATOR, "complex", "a larger piece of planning that needs a person")
        if self._is_smalltalk(t):
            return Decision(Route.OTHER, "smalltalk", "greeting or thanks")
        if self._any(self.out_of_scope, t):
            return Decision(Route.OTHER, "out_of_scope", "outside what the coach does")
        return Decision(Route.COACH, "coaching", "a coaching question")

    def _fault(self, t: str) -> Decision | None:
        account = self._any(self.accounts, t)
        if account:
            return Decision(Route.HELPDESK, "account", f"account or access problem ({account.group(0).lower()})")
        if self._any(self.not_fault, t):
            return None
        device = self._any(self.devices, t)
        fault = self._any(self.faults, t)
        if device and fault:
            return Decision(Route.HELPDESK, "fault", f"technical fault ({device.group(0).lower()}: {fault.group(0).lower()})")
        return None

    def _is_smalltalk(self, t: str) -> bool:
        words = _WORD.findall(t.lower())
        return len(words) <= self.max_smalltalk_words and all(w in self.smalltalk_words for w in words)
