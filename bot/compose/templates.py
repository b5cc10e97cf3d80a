"""The template composer: answer the ask first, briefly, then hand the thinking back.

A direct ask ("what could they make", "any ideas", "which tool") gets one or two ideas, a
sentence each from the best entries' notes, then one question; "just tell me" gets a short
straight answer; an open reflection gets its goal said back, then one or two questions. No
model is needed: the ideas and questions are the integrators' own, from the entries that
retrieval found; sources are drawn by the adapter, never in the text. An LLM composer (bot/llm.py) may write the reply instead; this one is
always there to fall back on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.compose.asks import (
    Ask, acknowledgement, ask_sentences, classify, find_goal, goal_openers, reflect_goal, topic_phrase,
    wants_no_questions, wants_several,
)
from bot.compose.ideas import best_sentence, straight_answer
from bot.models import PastTurn
from knowledge.glossary import AMBIGUOUS, read_as_tool
from knowledge.search import Hit

__all__ = ["CoachingRequest", "Composer", "Composition", "TemplateComposer", "reflect_goal"]

_LEARNING_WORDS = re.compile(r"\b(learn\w*|goal|purpose|why|understand\w*|think\w*|evidence|success)\b", re.I)
_TOOL_WORDS = re.compile(
    r"\b(app|apps|tool|software|platform|website|padlet|canva|kahoot|quizlet|seesaw|flip|google \w+|"
    r"chatgpt|ai|ipads?|chromebooks?|laptops?|tablets?|blooket|nearpod|mentimeter|book creator|scratch|"
    r"tinkercad|minecraft|classdojo|canvas|teams|onenote|forms|sheets|slides|docs|youtube|edpuzzle)\b",
    re.I,
)
# A second entry joins the reply only when it scored close to the first; further behind it is noise.
SECOND_SOURCE_RATIO = 0.6
# A second idea is offered only when its entry is nearly as good a match as the first.
SECOND_IDEA_RATIO = 0.9
# Ways into an idea, a straight answer and a second idea; a conversation never opens two turns alike.
# Ideas are the notes' own sentences; the source under the reply names the entry, so the text does not.
_IDEA_LEADS = ("One idea: ", "Something that often works: ", "Worth a try: ")
_SECOND_LEADS = ("Another: ", "Or: ")
_STRAIGHT_LEADS = ("Straight answer: ", "Short version: ", "In short: ")
_QUESTION_LEADS = ("Short answer: ", "In short: ")
# When every curated question has been asked in this conversation: plain ways to hand the thinking back.
_CLOSING = "You know your class best: what would you try first?"
# When no sentence of the notes answers the ask: said plainly, then the one question that lets the teacher go on.
_NO_ANSWER = ("The notes I have don't answer that directly.", "I don't have a direct answer to that in our notes.")
_NO_ANSWER_QUESTION = "What exactly should your students learn or be able to do by the end?"
_HAND_BACK = ("What would you try first with your class?", "What would success look like for your students?",
              "Which part of this feels hardest to plan?")

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


def names_tool(text: str) -> bool:
    """Whether the teacher names a tool; a name that is also a teaching idea ("flip the classroom",
    "work in teams") counts only when it is written or used as the tool."""
    for match in _TOOL_WORDS.finditer(text):
        if match.group(1).lower() not in AMBIGUOUS or read_as_tool(text, match.start(1), match.end(1)):
            return True
    return False


def _opening(text: str, words: int = 2) -> str:
    return " ".join(text.lower().split()[:words])


def _vary(options: Sequence[str], previous: str) -> str:
    """The first option that does not open the way the previous reply did."""
    return next((o for o in options if _opening(o) != previous), options[0])


def asked_before(question: str, history: Sequence[PastTurn]) -> bool:
    return any(question in turn.reply for turn in history)


class TemplateComposer:
    """Builds the reply from the integrators' curated notes, questions and links."""

    name = "template"

    def compose(self, request: CoachingRequest) -> Composition:
        """Answer the ask first (ideas, or a straight answer) or say the goal back; then hand the thinking back."""
        if not request.confident or not request.hits:
            return Composition(self.nothing_found(request.text), [])
        hits = list(request.hits)
        top = hits[0]
        used = [top]
        # A second entry joins only when it scored close to the first: otherwise it is noise.
        if len(hits) > 1 and request.max_sources > 1 and hits[1].score >= SECOND_SOURCE_RATIO * top.score:
            used.append(hits[1])
        asking = " ".join(ask_sentences(request.text)) or request.text
        ask = classify(asking)
        tool_named = names_tool(request.text)
        said = [t.reply for t in request.history]
        previous = _opening(request.history[-1].reply) if request.history else ""
        if ask is Ask.OPEN:
            lines, closing = self._open(request, used, tool_named, previous)
        else:
            lines, closing = self._answer(request, used, ask, asking, tool_named, said, previous), None
        # "No questions please": the straight answer, with nothing handed back.
        if ask is Ask.STRAIGHT and wants_no_questions(request.text):
            kept = [line for line in lines if "?" not in line]
            lines, closing = kept or lines, None
        # A teacher who is stressed, new or had a lesson go badly hears that first, in one short line.
        ack = acknowledgement(request.text, len(request.history))
        if ack:
            lines = [ack, *lines]
        # An answer keeps its question to the last: the second idea goes first when it is too long.
        text = self._fit(lines, closing, request.max_words, keep_last=ask is not Ask.OPEN)
        # Sources are drawn by the adapter under the reply (a link, or "Read it"), never in the text.
        return Composition(text, [h.entry.id for h in used[: request.max_sources]])

    def _open(self, request: CoachingRequest, used: list[Hit], tool_named: bool,
              previous: str) -> tuple[list[str], str | None]:
        """A goal or reflection: the goal said back in the teacher's terms, then one or two questions."""
        # The goal or topic is said back only when it reads as plain English; otherwise no echo at all.
        openers = goal_openers(find_goal(request.text), topic_phrase(used[0].entry.title))
        close = [h for h in used if h.score >= SECOND_IDEA_RATIO * used[0].score]
        questions = self._questions(close, request.history, prefer_learning=tool_named)
        # A named tool puts the learning question first (see _questions); no "before the tool" label.
        lines = [_vary(openers, previous)] if openers else []
        lines.extend(questions)
        coaching_turns = sum(1 for t in request.history if t.route == "coach")
        closing = _CLOSING if coaching_turns >= 2 and len(questions) < 2 and not asked_before(_CLOSING, request.history) \
            else None
        return lines, closing

    def _answer(self, request: CoachingRequest, used: list[Hit], ask: Ask, asking: str, tool_named: bool,
                said: list[str], previous: str) -> list[str]:
        """A direct ask: one or two ideas from the best entries, a sentence each, then one question."""
        ideas: list[str] = []
        for hit in used:
            if ideas and (ask is not Ask.IDEAS or not wants_several(asking)
                          or hit.score < SECOND_IDEA_RATIO * used[0].score):
                break
            if ask is Ask.STRAIGHT:  # a straight answer: a sentence or two from the best entry's note
                sentence = straight_answer(hit.entry, asking, avoid=said)
            else:  # an idea must answer the ask, not just come from the right entry
                sentence = best_sentence(hit.entry, asking, avoid=said, must_answer=True)
            if sentence is None:
                continue
            if not ideas:
                leads = {Ask.STRAIGHT: _STRAIGHT_LEADS, Ask.QUESTION: _QUESTION_LEADS}.get(ask, _IDEA_LEADS)
                ideas.append(_vary(leads, previous) + sentence)
            else:
                ideas.append(_SECOND_LEADS[len(request.history) % len(_SECOND_LEADS)] + sentence)
        close = [h for h in used if h.score >= SECOND_IDEA_RATIO * used[0].score]
        questions = self._questions(close, request.history, prefer_learning=tool_named)[:1]
        if not ideas:  # nothing in the notes answers it: say so in one line, then the question that lets them go on
            question = _NO_ANSWER_QUESTION if not asked_before(_NO_ANSWER_QUESTION, request.history) else questions[0]
            return [_NO_ANSWER[len(request.history) % len(_NO_ANSWER)], question]
        return [*ideas, *questions]
    @staticmethod
    def _questions(used: list[Hit], history: Sequence[PastTurn], *, prefer_learning: bool) -> list[str]:
        """One question from each entry used (a second from the best when there is one entry), never one
        asked before in the conversation; when the entries' questions run out, a plain one that hands back."""
        chosen: list[str] = []
        for hit in used:
            pool = [q for q in hit.entry.questions if not asked_before(q, history) and q not in chosen]
            if prefer_learning and not chosen:
                pool.sort(key=lambda q: 0 if _LEARNING_WORDS.search(q) else 1)
            if pool:
                chosen.append(pool[0])
            if len(chosen) == 2:
                break
        if len(chosen) < 2:
            chosen += [q for q in used[0].entry.questions if q not in chosen and not asked_before(q, history)][:1]
        if not chosen:
            unasked = [q for q in _HAND_BACK if not asked_before(q, history)]
            chosen = unasked[:1] or [_HAND_BACK[len(history) % len(_HAND_BACK)]]
        return chosen[:2]

    @staticmethod
    def _fit(lines: list[str], closing: str | None, max_words: int, keep_last: bool = False) -> str:
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
                lines = lines[:-2] + lines[-1:] if keep_last else lines[:-1]
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
