"""The Socratic composer: reflect the goal, ask one or two curated questions, offer resources.

No model is needed: the questions are the integrators' own, chosen from the entries that
retrieval found. An LLM composer (bot/llm.py) may write the reply instead; this one is
always there to fall back on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.models import PastTurn
from knowledge.search import Hit

_GOAL = re.compile(
    r"\b(?:i|we)(?:'d| would)? (?:want|like|wanna|need|hope|am hoping|are hoping|am trying|are trying|'m trying|'re trying)"
    r"(?P<to> to)? (?P<goal>[^.?!\n]{6,120})",
    re.IGNORECASE,
)
_HOW = re.compile(
    r"\bhow (?:do|can|could|should|would|might) (?:i|we) (?P<goal>[^.?!\n]{6,120})", re.IGNORECASE
)
_HOW_THEY = re.compile(
    r"\bhow (?P<verb>do|can|could|should|would|might|will) (?P<subj>my|our) (?P<rest>[^.?!\n]{4,120})", re.IGNORECASE
)
_PRONOUNS = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "we": "you",
    "us": "you", "our": "your", "ours": "yours", "i'm": "you're", "i've": "you've", "we're": "you're",
    "am": "are", "i'd": "you'd",
}
_LEARNING_WORDS = re.compile(r"\b(learn\w*|goal|purpose|why|understand\w*|think\w*|evidence|success)\b", re.I)
_TOOL_WORDS = re.compile(
    r"\b(app|apps|tool|software|platform|website|padlet|canva|kahoot|quizlet|seesaw|flip|google \w+|"
    r"chatgpt|ai|ipads?|chromebooks?|laptops?|tablets?|blooket|nearpod|mentimeter|book creator|scratch|"
    r"tinkercad|minecraft|classdojo|canvas|teams|onenote|forms|sheets|slides|docs|youtube|edpuzzle)\b",
    re.I,
)
MAX_GOAL_WORDS = 16
# A second entry joins the reply only when it scored close to the first; further behind it is noise.
SECOND_SOURCE_RATIO = 0.6


def _second_person(phrase: str) -> str:
    words = phrase.split()
    return " ".join(_PRONOUNS.get(w.lower(), w) for w in words)


def reflect_goal(text: str) -> str | None:
    """The teacher's goal in their own words, turned to 'you', or None when none is stated."""
    for pattern, lead in ((_GOAL, "You want"), (_HOW, "You're working out how to")):
        m = pattern.search(text)
        if m:
            if pattern is _GOAL and m.group("to"):
                lead = "You want to"
            goal = m.group("goal").strip(" ,;:-")
            goal = re.split(r"\s+(?:but|so that|because|since|and then|- )\s+", goal)[0]
            words = goal.split()
            if len(words) > MAX_GOAL_WORDS:
                goal = " ".join(words[:MAX_GOAL_WORDS]) + "…"
            return f"{lead} {_second_person(goal)}."
    m = _HOW_THEY.search(text)
    if m:
        words = m.group("rest").strip(" ,;:-").split()
        rest = " ".join(words[:MAX_GOAL_WORDS]) + ("…" if len(words) > MAX_GOAL_WORDS else "")
        return f"You're asking: how {m.group('verb').lower()} your {_second_person(rest)}?"
    return None


@dataclass(frozen=True)
class CoachingRequest:
    """What a composer needs to write one coaching reply."""

    text: str
    hits: Sequence[Hit]
    confident: bool
    history: Sequence[PastTurn] = ()
    max_words: int = 120
    max_sources: int = 2
    memory_key: str | None = None  # the conversation, for per-conversation usage records


@dataclass
class Composition:
    text: str
    sources: list[str] = field(default_factory=list)
    composer: str = "template"


class Composer(Protocol):
    name: str

    def compose(self, request: CoachingRequest) -> Composition: ...


def asked_before(question: str, history: Sequence[PastTurn]) -> bool:
    return any(question in turn.reply for turn in history)


class TemplateComposer:
    """Builds the reply from the integrators' curated questions and links."""

    name = "template"

    def compose(self, request: CoachingRequest) -> Composition:
        """One Socratic reply: goal, one or two questions, at most `max_sources` resources."""
        if not request.confident or not request.hits:
            return Composition(self.nothing_found(request.text), [])
        hits = list(request.hits)
        top = hits[0]
        used = [top]
        # A second entry joins only when it scored close to the first: otherwise it is noise.
        if len(hits) > 1 and request.max_sources > 1 and hits[1].score >= SECOND_SOURCE_RATIO * top.score:
            used.append(hits[1])
        names_tool = bool(_TOOL_WORDS.search(request.text))
        questions = self._questions(used, request.history, prefer_learning=names_tool)
        opener = reflect_goal(request.text) or f"You're thinking about {top.entry.title[0].lower() + top.entry.title[1:]}."
        lines = [opener]
        if names_tool:
            lines.append("Before the tool, the learning:")
        lines.extend(questions)
        # Sources are drawn by the adapter under the reply (a link, or "Read it"), never in the text.
        resources = [h for h in used[: request.max_sources]]
        coaching_turns = sum(1 for t in request.history if t.route == "coach")
        closing = "You know your class best: what would you try first?" if coaching_turns >= 2 else None
        text = self._fit(lines, closing, request.max_words)
        return Composition(text, [h.entry.id for h in resources])

    @staticmethod
    def _questions(used: list[Hit], history: Sequence[PastTurn], *, prefer_learning: bool) -> list[str]:
        chosen: list[str] = []
        for hit in used:
            pool = [q for q in hit.entry.questions if not asked_before(q, history)] or list(hit.entry.questions)
            if prefer_learning and not chosen:
                pool.sort(key=lambda q: 0 if _LEARNING_WORDS.search(q) else 1)
            for q in pool:
                if q not in chosen:
                    chosen.append(q)
                    break
            if len(chosen) == 2:
                break
        if len(chosen) < 2:
            pool = [q for q in used[0].entry.questions if q not in chosen and not asked_before(q, history)]
            if pool:
                chosen.append(pool[0])
        return chosen[:2]

    @staticmethod
    def _fit(lines: list[str], closing: str | None, max_words: int) -> str:
        def render(ls: list[str], cl: str | None) -> str:
            body = "\n".join(ls)
            if cl:
                body += "\n" + cl
            return body

        text = render(lines, closing)
        # Trim from the end of what matters least until it fits: closing, then the second question.
        while len(text.split()) > max_words:
            if closing:
                closing = None
            elif len(lines) > 2:
                lines = lines[:-1]
            else:
                break
            text = render(lines, closing)
        return text

    @staticmethod
    def nothing_found(text: str) -> str:
        """Honest when the knowledge base has nothing: no guessing, one clarifying question."""
        return (
            "I don't have anything in our knowledge base on that yet, so I won't guess. "
            "Could you tell me a bit more: what do you want your students to learn or be able to do, "
            "and with which year group? (If something is broken or you can't log in, say so and I'll raise a helpdesk ticket.)"
        )
