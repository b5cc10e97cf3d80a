"""Plan detection: does a teacher's turn say what they will try, or ask to be checked on?

Rules rather than a learned model: the cues are few and closed-class (a first-person future,
a verb of trying something in class, a day), and every false offer is a question a teacher
did not ask for, so each rule is one a reader can check. `benchmarks/checkins.py` measures
offer precision and recall on any set in the format of `eval/checkins/plans-team.jsonl`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_FORMS = {
    "monday": "mon|monday", "tuesday": "tue|tues|tuesday", "wednesday": "wed|weds|wednesday",
    "thursday": "thu|thur|thurs|thursday", "friday": "fri|friday", "saturday": "sat|saturday",
    "sunday": "sun|sunday",
}
_DAY = re.compile(r"\b(?:" + "|".join(f"(?P<{d}>{f})" for d, f in _DAY_FORMS.items()) + r")(?:'s|s)?\b")


class WhenKind(str, Enum):
    """What a teacher's time phrase names."""

    WEEKDAY = "weekday"
    TODAY = "today"
    TOMORROW = "tomorrow"
    NEXT_WEEK = "next week"
    AFTER_HALF_TERM = "after half term"


@dataclass(frozen=True)
class When:
    """A time phrase read from the teacher's words: its kind, the weekday if one was named, a label."""

    kind: WhenKind
    weekday: int | None = None  # 0 = Monday
    next_week: bool = False  # "Tuesday next week"

    @property
    def label(self) -> str:
        """The phrase as the eval sets spell it: "thursday", "tomorrow", "next week", "after half term"."""
        return WEEKDAYS[self.weekday] if self.kind is WhenKind.WEEKDAY and self.weekday is not None else self.kind.value

    @property
    def spoken(self) -> str:
        """How a button or a message says it: "Thursday", "tomorrow", "next week"."""
        return self.label.capitalize() if self.kind is WhenKind.WEEKDAY else self.label


@dataclass(frozen=True)
class Plan:
    """What a turn said the teacher will do; `summary` is in the second person ("try exit tickets with 9B")."""

    summary: str
    when: When | None
    asked: bool  # the teacher asked to be checked on ("remind me")
    vague: bool  # the object is only "it"/"that": the caller names what was talked about


_HALF_TERM = re.compile(r"\bafter (?:the )?half[- ]?term\b")
_NEXT_WEEK = re.compile(r"\bnext week\b")
_TOMORROW = re.compile(r"\btomorrow\b|\btmrw\b")
_TODAY = re.compile(r"\b(?:today|this afternoon|later today|this morning|tonight)\b")


def parse_when(text: str) -> When | None:
    """The time phrase in a teacher's turn, if any: a weekday, tomorrow, next week, after half term."""
    low = _norm(text)
    if _HALF_TERM.search(low):
        return When(WhenKind.AFTER_HALF_TERM)
    day = _DAY.search(low)
    if day is not None:
        name = next(k for k, v in day.groupdict().items() if v)
        return When(WhenKind.WEEKDAY, WEEKDAYS.index(name), next_week=bool(_NEXT_WEEK.search(low)))
    if _TOMORROW.search(low):
        return When(WhenKind.TOMORROW)
    if _NEXT_WEEK.search(low):
        return When(WhenKind.NEXT_WEEK)
    if _TODAY.search(low):
        return When(WhenKind.TODAY)
    return None


# "Remind me", "check in with me" ... but not "remind me what SAMR stands for" (a question about a word).
_ASK = re.compile(
    r"\b(?:remind me|check (?:in|back) (?:with|on) me|check in with me|check back(?: in)?|follow up with me|"
    r"ask me how it went|ask me how (?:it|they|that) (?:went|got on)|nudge me|hold me to it|"
    r"(?:can|could|will|would) you (?:check in|check back|follow up)|please (?:check in|check back|follow up))\b"
    r"(?!\s+(?:what|how to|how do|how you|how i|who|where|why|which|of)\b)")

_SUBJECT = (r"(?:i'?ll|i will|i shall|i'm (?:definitely |really |totally |def )?going to|i am going to|i'm gonna|"
            r"i am gonna|i plan to|i'm planning to|i'm keen to|i am keen to|i'm excited to|i intend to|i aim to|i hope to|"
            r"i'm hoping to|"
            r"i am planning to|my plan is to|i want to|i'd like to|we'll|we will|we're going to|we are going to|"
            r"we're gonna|let me|i think i'll|i think i will|^will|^going to|^gonna|^planning to|"
            r"(?:ok|okay|right|so|then|yes|great|thanks)[,!]? (?:going to|gonna|will))")
_FILLER = r"(?:\s+(?:just|then|definitely|def|also|now|first|actually|really|aim to|hope to|try and|make sure to))*"
_VERB = (r"(?:try|trial|pilot|use|give|have a go|have a try|run|test|introduce|start|set up|set|do|model|roll out|"
         r"swap|get (?:them|year|yr|my|the|class|set|\w*\d)|have (?:them|year|yr|my|the|class|\w*\d)|make|launch|"
         r"build|record|teach|bring|put|show|share|add|create|design|film|switch|replace|adapt|experiment|play|"
         r"assign|let (?:them|the|my|year|yr|\w*\d)|plan)")
_COMMIT = re.compile(rf"(?:\b|^){_SUBJECT}{_FILLER}\s+(?P<verb>{_VERB})\b")
# "Tomorrow I'm doing the Flip reflections with 10B": a present continuous with a time named.
_PROGRESSIVE = re.compile(r"(?:\b(?:i'm|i am|we're|we are|i'll|i will|we'll)(?:\s+(?:definitely|really|actually|also|"
                          r"def|be|planning on|thinking of))*\s+|\bplanning on\s+|^|, )(?P<verb>trying|using|doing|running|piloting|trialling|"
                          r"trialing|starting|introducing|testing|launching)\b")
# Words that turn a commitment into a maybe, a past, or a no.
_VETO = re.compile(
    r"\b(?:maybe|might|perhaps|possibly|probably|not sure|one day|someday|some point|if i (?:had|have|get)|"
    r"was going to|were going to|was planning|were planning|wasn't|won't|will not|not going to|never|"
    r"don't think|do not think|i'd love|i would|i'd (?:try|use|do)|try again|give (?:you|u)|"
    r"try to (?:remember|find|fix|sort|figure|work out|log ?in|reset|get hold|reach|contact|call|email|make it|"
    r"come|attend|join|read|look|restart|reboot|connect))\b")


# "If it works I'll try it with 9B": a condition before the commitment makes it a maybe.
_CONDITION = re.compile(r"\b(?:if|unless|once)\b")


def detect_plan(text: str) -> Plan | None:
    """A plan stated or a check-in asked for in `text`; None when the turn has neither."""
    original = _norm(text, lower=False)
    low = original.lower()
    if not low:
        return None
    asked = bool(_ASK.search(low))
    best: tuple[str, re.Match[str]] | None = None
    for start, sentence in _sentences(low):
        if sentence.endswith("?"):
            continue  # "should I try it on Monday?" asks, it does not commit
        if _VETO.search(sentence):
            continue
        match = _COMMIT.search(sentence)
        if match is None:
            progressive = _PROGRESSIVE.search(sentence)
            if progressive is not None and parse_when(sentence) is not None:
                match = progressive
        if match is not None and not _CONDITION.search(sentence[:match.start()]):
            best = (original[start:start + len(sentence)], match)
            break
    if best is None and not asked:
        return None
    when = parse_when(low)
    if best is None:
        return Plan(summary="", when=when, asked=True, vague=True)
    sentence, match = best
    summary = _summary(sentence[match.start("verb"):], match.group("verb"))
    vague = len(summary.split()) <= 1 or bool(_VAGUE.match(summary))
    return Plan(summary=summary, when=when, asked=asked, vague=vague)


_VAGUE = re.compile(r"^\S+(?: (?:a go|a try|out|up))? (?:it|that|this|them|those)\b")


def _norm(text: str, *, lower: bool = True) -> str:
    text = (text or "").replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\s+", " ", text).strip()
    # Lower-casing keeps ASCII offsets; a character that changes length (rare) only shifts the summary.
    return text.lower() if lower else text


def _sentences(low: str) -> list[tuple[int, str]]:
    """Sentences with their offsets, stripped of leading spaces."""
    out = []
    for m in re.finditer(r"[^.!?]+[.!?]*", low):
        stripped = m.group(0).lstrip()
        if stripped.strip():
            out.append((m.start() + len(m.group(0)) - len(stripped), stripped.rstrip()))
    return out


_TAIL = re.compile(r"(?i)\s*(?:,?\s*(?:and|then)\s+(?:see|let you know|report back|tell you)\b.*|,?\s*(?:thanks|thank you|"
                   r"cheers)\b.*|\s+then$|\s+and see$)$")
_WHEN_WORDS = re.compile(
    r"(?i),?\s*\b(?:on |this |next |first thing |after )?(?:(?:" + "|".join(_DAY_FORMS.values()) + r")(?:'s)?"
    r"(?: (?:morning|afternoon|lesson|class))?|tomorrow(?: morning| afternoon)?|next week|after (?:the )?half[- ]?term|"
    r"today|this afternoon|this morning|this week|next lesson)\b")
_PRONOUNS = {"my": "your", "our": "your", "i": "you", "me": "you", "i'm": "you're", "we": "you", "us": "you",
             "myself": "yourself", "mine": "yours"}


def _summary(clause: str, verb: str) -> str:
    """The plan from its verb on, in the second person, without the time phrase or sign-off."""
    clause = clause.rstrip(".!? ")
    clause = _TAIL.sub("", clause)
    clause = _WHEN_WORDS.sub("", clause)
    clause = re.sub(r"\s+", " ", clause).strip(" ,")
    words = [_PRONOUNS.get(w.lower(), w) for w in clause.split(" ")]
    out = " ".join(words)
    out = out[:1].lower() + out[1:]
    progressive = {"trying": "try", "using": "use", "doing": "do", "running": "run", "piloting": "pilot",
                   "trialling": "trial", "trialing": "trial", "starting": "start", "introducing": "introduce",
                   "testing": "test", "launching": "launch"}
    if verb in progressive:
        out = progressive[verb] + out[len(verb):]
    return out
