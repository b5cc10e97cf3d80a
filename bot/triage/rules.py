"""Phrase rules from config/triage.yaml: the exact, cheap-to-trust part of triage.

They never decide alone what the learned router can read better. Safeguarding and
data-incident phrases are a floor under the model's detectors; requests for a person,
frustration, small talk and ticket numbers are explicit, so a phrase is enough.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.triage.categories import CONCERNS, LEARNED, Category
from bot.triage.corpus import TriageConfigError
from bot.triage.features import tokens

# Only emoji, Slack :shortcodes: and punctuation: a reaction, not a question.
_REACTION = re.compile(r"^(?:\s|:[a-z0-9_+\-]+:|[^\w\s]|\d)+$", re.IGNORECASE)


def _compile(patterns: Any, where: str) -> list[re.Pattern[str]]:
    """Each pattern checked on its own (so an error names it), then joined into one where they can be.

    One alternation is searched in a single pass instead of one pass per phrase; patterns that
    cannot share one (inline flags, group names used twice) stay as they are.
    """
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
    if len(out) > 1:
        try:
            return [re.compile("|".join(f"(?:{p.pattern})" for p in out), re.IGNORECASE)]
        except re.error:
            pass
    return out


def _expected_mix(mix: Any, where: str) -> dict[Category, float]:
    """The share of each routed category in a school's real messages; empty when not given.

    Concerns are never listed: their detectors decide them, recall first, whatever the mix.
    """
    if mix is None:
        return {}
    if not isinstance(mix, dict) or not mix:
        raise TriageConfigError(f"{where}: must map categories to their share of messages")
    out: dict[Category, float] = {}
    for name, share in mix.items():
        try:
            category = Category(str(name))
        except ValueError:
            raise TriageConfigError(f"{where}: {name!r} is not a category "
                                    f"(one of {', '.join(c.value for c in LEARNED)})") from None
        if category in CONCERNS or category not in LEARNED:
            raise TriageConfigError(f"{where}: {name!r} cannot be given a share (its detector decides it)")
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 1:
            raise TriageConfigError(f"{where}: {name!r} must be a share between 0 and 1, not {share!r}")
        out[category] = float(share)
    missing = [c.value for c in LEARNED if c not in CONCERNS and c not in out]
    if missing:
        raise TriageConfigError(f"{where}: missing {', '.join(missing)}")
    total = sum(out.values())
    return {c: v / total for c, v in out.items()}


def _first(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(0).lower()
    return None


@dataclass(frozen=True)
class RuleHits:
    """What the phrases found in one message (the matched words, for explanations)."""

    safeguarding: str | None = None
    data_incident: str | None = None
    human_request: str | None = None
    frustration: str | None = None
    smalltalk: bool = False
    ticket: str | None = None
    lesson_only: bool = False  # a hard topic as lesson content, with no sign of an incident


class PhraseRules:
    """The phrases a school may edit, compiled once."""

    def __init__(self, config: dict[str, Any], source: str = "triage config") -> None:
        self.source = source
        try:
            self.safeguarding = _compile(config["safeguarding"], f"{source}: safeguarding")
            self.data_incident = _compile(config["data_incident"], f"{source}: data_incident")
            self.human_request = _compile(config["human_request"], f"{source}: human_request")
            self.frustration = _compile(config["frustration"], f"{source}: frustration")
            self.frustration_min_coach_turns = int(config.get("frustration_min_coach_turns", 1))
            self.lesson_framing = _compile(config.get("lesson_framing", []), f"{source}: lesson_framing")
            self.incident_markers = _compile(config.get("incident_markers", []), f"{source}: incident_markers")
            smalltalk = config["smalltalk"]
            self.smalltalk_words = frozenset(str(w).lower() for w in smalltalk["words"])
            self.smalltalk_max_words = int(smalltalk.get("max_words", 10))
            self.ticket_reference = _compile(config["ticket_reference"], f"{source}: ticket_reference")
            router = config.get("router") or {}
            self.alternative_margin = float(router.get("alternative_margin", 0.25))
            self.expected_mix = _expected_mix(router.get("expected_mix"), f"{source}: router.expected_mix")
            self.coaching_follow_up_weight = float(router.get("coaching_follow_up_weight", 1.0))
            if self.coaching_follow_up_weight < 1.0:
                raise TriageConfigError(f"{source}: router.coaching_follow_up_weight must be at least 1")
        except TriageConfigError:
            raise
        except KeyError as exc:
            raise TriageConfigError(f"{source}: missing section {exc.args[0]!r}") from None
        except (TypeError, AttributeError, ValueError) as exc:
            raise TriageConfigError(f"{source}: malformed ({exc})") from None
        self.digest = hashlib.sha256(repr(sorted(config.items(), key=str)).encode()).hexdigest()[:12]

    @classmethod
    def from_file(cls, path: Path) -> "PhraseRules":
        """Read and compile `triage.yaml`; every problem names the file and section."""
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TriageConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise TriageConfigError(f"{path}: YAML syntax error: {exc}") from None
        if not isinstance(config, dict):
            raise TriageConfigError(f"{path}: must be a mapping of sections")
        return cls(config, str(path))

    def match(self, text: str) -> RuleHits:
        """Every phrase family that matches `text`."""
        t = " ".join(text.replace("’", "'").split())
        safeguarding = _first(self.safeguarding, t)
        # Lesson framing only ever quiets a safeguarding phrase, so it is read only when one matched.
        lesson_only = bool(safeguarding) and bool(_first(self.lesson_framing, t)) \
            and not _first(self.incident_markers, t)
        return RuleHits(
            safeguarding=safeguarding,
            data_incident=_first(self.data_incident, t),
            human_request=_first(self.human_request, t),
            frustration=_first(self.frustration, t),
            smalltalk=self.is_smalltalk(t),
            ticket=_first(self.ticket_reference, t),
            lesson_only=lesson_only,
        )

    def is_smalltalk(self, text: str) -> bool:
        """Greetings, thanks and reactions made only of such words; anything longer is the router's."""
        if _REACTION.match(text):
            return True
        words = [w for w in tokens(text) if w.isalnum() or "'" in w]
        if not words:
            return bool(tokens(text))  # emoji only
        return len(words) <= self.smalltalk_max_words and all(w in self.smalltalk_words for w in words)
