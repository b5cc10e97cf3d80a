"""Rule-based triage into the four routes; the phrases live in config/triage.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bot.models import Route
from bot.triage.examples import ExampleIndex


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
THANKS = frozenset({"thanks", "thank", "thx", "ty", "cheers", "ta", "thankyou"})
SEMANTIC_ROUTES = {
    "human_request": (Route.INTEGRATOR, "the teacher asked for a person"),
    "complex": (Route.INTEGRATOR, "a larger piece of planning that needs a person"),
    "fault": (Route.HELPDESK, "technical fault"),
    "account": (Route.HELPDESK, "account or access problem"),
    "smalltalk": (Route.OTHER, "greeting or thanks"),
    "out_of_scope": (Route.OTHER, "outside what the coach does"),
}


class Triage:
    """Decides a route from the message and the conversation so far, without a model."""

    def __init__(self, config: dict[str, Any], source: str = "triage config",
                 examples: ExampleIndex | None = None) -> None:
        self.examples = examples
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
            semantic = config.get("semantic", {}) or {}
            self.safeguarding_min = float(semantic.get("safeguarding_min", 0.5))
            self.safeguarding_margin = float(semantic.get("safeguarding_margin", 0.05))
            self.safeguarding_coaching_margin = float(semantic.get("safeguarding_coaching_margin",
                                                                   self.safeguarding_margin))
            self.data_incident_min = float(semantic.get("data_incident_min", 0.45))
            self.semantic_min = float(semantic.get("min_score", 0.5))
            self.semantic_margin = float(semantic.get("margin", 0.05))
        except KeyError as exc:
            raise TriageConfigError(f"{source}: missing section {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise TriageConfigError(f"{source}: malformed ({exc})") from None

    @classmethod
    def from_file(cls, path: Path, examples: ExampleIndex | None = None) -> "Triage":
        """Load the phrases a school may edit (and, optionally, the example index)."""
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TriageConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise TriageConfigError(f"{path}: YAML syntax error: {exc}") from None
        if not isinstance(config, dict):
            raise TriageConfigError(f"{path}: must be a mapping of sections")
        return cls(config, str(path), examples)

    @staticmethod
    def _any(patterns: list[re.Pattern[str]], text: str) -> re.Match[str] | None:
        for pattern in patterns:
            match = pattern.search(text)
            if match:
                return match
        return None

    def decide(self, text: str, *, coach_turns: int = 0, vector: np.ndarray | None = None) -> Decision:
        """Route one message; `coach_turns` is how many coaching replies this conversation has had.

        With `vector` (the message's embedding) and an example index, messages no phrase rule
        caught are also compared with the example messages by meaning.
        """
        t = " ".join(text.replace("’", "'").split())
        lesson_only = bool(self._any(self.lesson_framing, t)) and not self._any(self.incident_markers, t)
        hit = self._any(self.safeguarding, t)
        if hit and not lesson_only:
            return Decision(Route.INTEGRATOR, "safeguarding", f"possible safeguarding concern ({hit.group(0).lower()})", True)
        if self._any(self.data_incident, t):
            return Decision(Route.INTEGRATOR, "data_incident", "possible student-data incident", True)
        scores = self.examples.scores(vector) if (self.examples is not None and vector is not None) else None
        if self._any(self.human_request, t):
            return Decision(Route.INTEGRATOR, "human_request", "the teacher asked for a person")
        if self._any(self.frustration, t) and coach_turns >= self.frustration_min_coach_turns:
            return Decision(Route.INTEGRATOR, "frustration", "coaching was not helping")
        fault = self._fault(t)
        if fault:
            return fault
        if scores and not lesson_only:
            concern = self._semantic_concern(scores)
            if concern is not None:
                return concern
        if self._any(self.complex, t):
            return Decision(Route.INTEGRATOR, "complex", "a larger piece of planning that needs a person")
        if self._is_smalltalk(t):
            return Decision(Route.OTHER, "smalltalk", "greeting or thanks")
        if self._any(self.out_of_scope, t):
            return Decision(Route.OTHER, "out_of_scope", "outside what the coach does")
        if scores:
            semantic = self._semantic(scores, coach_turns)
            if semantic is not None:
                return semantic
        return Decision(Route.COACH, "coaching", "a coaching question")

    def _semantic_concern(self, scores: dict[str, float]) -> Decision | None:
        # When in doubt, a human: a message this close to a safeguarding example goes to a person
        # even when it is nearly as close to something else. A data incident must be the nearest.
        others = max((v for k, v in scores.items() if k not in ("safeguarding", "data_incident", "coaching")), default=0.0)
        coaching = scores.get("coaching", 0.0)
        safeguarding = scores.get("safeguarding", 0.0)
        # Coaching near-misses may outscore a real concern a little (a disclosure inside a
        # question about a lesson); only a clearly closer coaching example keeps it coaching.
        if (safeguarding >= self.safeguarding_min and safeguarding >= others - self.safeguarding_margin
                and safeguarding >= coaching - self.safeguarding_coaching_margin):
            return Decision(Route.INTEGRATOR, "safeguarding", "possible safeguarding concern (similar to known concerns)", True)
        data = scores.get("data_incident", 0.0)
        if data >= self.data_incident_min and data >= max(others, coaching, safeguarding):
            return Decision(Route.INTEGRATOR, "data_incident", "possible student-data incident (similar to known incidents)", True)
        return None

    def _semantic(self, scores: dict[str, float], coach_turns: int) -> Decision | None:
        best = max(scores, key=scores.get)
        if best in ("coaching", "safeguarding", "data_incident"):
            return None
        margin = scores[best] - scores.get("coaching", 0.0)
        if scores[best] < self.semantic_min or margin < self.semantic_margin:
            return None
        route, reason = SEMANTIC_ROUTES[best]
        return Decision(route, best, f"{reason} (similar to known requests)")

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
        if len(words) <= self.max_smalltalk_words and all(w in self.smalltalk_words for w in words):
            return True
        # "Thanks, the kids loved it!" is thanks, not a question, however it goes on.
        return (bool(words) and words[0] in THANKS and "?" not in t and len(words) <= self.max_smalltalk_words + 4)
