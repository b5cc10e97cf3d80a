"""The template composer: answer the ask first, briefly, then hand the thinking back.

A direct ask ("what could they make", "any ideas", "which tool") gets one or two ideas, a
sentence each from the best entries' notes, then one question; "just tell me" gets a short
straight answer; an open reflection gets its goal said back, then one or two questions. No
model is needed: the ideas and questions are the integrators' own, from the entries that
retrieval found; sources are drawn by the adapter, never in the text. An LLM composer (bot/llm.py) may write the reply instead; this one is
always there to fall back on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bot.compose.asks import (
    Ask, Verdict, acknowledgement, ask_sentences, classify, find_goal, goal_openers, lower_first, reflect_goal,
    topic_phrase, verdict, wants_no_questions, wants_several,
)
from bot.compose.follow_ups import (
    CONSTRAINT_CUES, CONSTRAINT_LEADS, Constraint, builds_on, concern_openers, constraint,
)
from bot.compose.fit import SentenceFit
from bot.compose.ideas import scored_sentences, straight_answer
from bot.compose.phrasing import COND_FORMS, IDEA_FORMS, phrase_idea
from bot.models import PastTurn
from knowledge.glossary import AMBIGUOUS, read_as_tool
from knowledge.search import Hit

__all__ = ["CoachingRequest", "Composer", "Composition", "TemplateComposer", "reflect_goal"]

log = logging.getLogger(__name__)
# How close in meaning a text is to the ask (None when not measured).
Meaning = Callable[[str], "float | None"]

_LEARNING_WORDS = re.compile(r"\b(learn\w*|goal|purpose|why|understand\w*|think\w*|evidence|success)\b", re.I)
_TOOL_WORDS = re.compile(
    r"\b(app|apps|tool|software|platform|website|padlet|canva|kahoot|quizlet|seesaw|flip|google \w+|"
    r"chatgpt|ai|ipads?|chromebooks?|laptops?|tablets?|blooket|nearpod|mentimeter|book creator|scratch|"
    r"tinkercad|minecraft|classdojo|canvas|teams|onenote|forms|sheets|slides|docs|youtube|edpuzzle)\b",
    re.I,
)
# A second entry joins the reply only when it scored close to the first; further behind it is noise.
SECOND_SOURCE_RATIO = 0.6
# ... and only when it trails the first by at most this much of the retrieval score (see second_is_relevant).
SECOND_SOURCE_GAP = 0.06
# A second idea is offered only when its entry is nearly as good a match as the first.
SECOND_IDEA_RATIO = 0.9
# The second entry's best sentence leads the reply only when it beats the first entry's by this much.
SECOND_ENTRY_HANDICAP = 0.3
# Per place in the integrators' list, what a question loses against its closeness to the ask.
QUESTION_ORDER_WEIGHT = 0.03
# Ways into an idea, a straight answer and a second idea; a conversation never opens two turns alike.
# Ideas are the notes' own sentences; the source under the reply names the entry, so the text does not.
_IDEA_LEADS = ("One idea: ", "Something that often works: ", "Worth a try: ")
_SECOND_LEADS = ("Another: ", "Or: ")
_STRAIGHT_LEADS = ("Straight answer: ", "Short version: ", "In short: ")
_QUESTION_LEADS = ("Short answer: ", "In short: ")
# "Is it ok to ...?", "does it help?": the verdict first, then the note's sentence that backs it. A sentence
# with a condition or a warning in it gets "it depends"; one that says what it does gets a qualified yes.
_VERDICT_LEADS: dict[tuple[Verdict, bool], tuple[str, ...]] = {
    (Verdict.PERMISSION, False): ("Yes, with some care.", "Generally yes, with care."),
    (Verdict.PERMISSION, True): ("It depends.", "Not always."),
    (Verdict.VALUE, False): ("It can.", "Yes, it can."),
    (Verdict.VALUE, True): ("It can, if it's set up well.", "It depends on how it's used."),
}
_HEDGED = re.compile(r"\b(not|never|rarely|only|unless|check|risk\w*|careful|avoid|instead|rather than|depends?|"
                     r"caution|without)\b", re.I)
# A follow-up that adds no limit: the next idea, said as following on from the last.
_FOLLOW_LEADS = ("In that case", "Given that")
# A short "what would that look like?" leans on the turn before for what "that" is.
_REFERS_BACK = re.compile(r"\b(it|that|this|them|those|these|one)\b", re.I)
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
    message_vector: np.ndarray | None = None  # the message's embedding when triage made one (saves embedding it again)


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


def _lower_start(sentence: str) -> str:
    """A note's sentence inside ours: an ordinary first word lowered ("Short, frequent quizzes" -> "short, ..."),
    a name kept ("Google Forms ...")."""
    head, space, rest = sentence.partition(" ")
    core = head.rstrip(",;:")
    return lower_first(core) + head[len(core):] + space + rest


def asked_before(question: str, history: Sequence[PastTurn]) -> bool:
    return any(question in turn.reply for turn in history)


def second_is_relevant(top: Hit, second: Hit) -> bool:
    """Whether the second entry found is worth showing beside the first: close to it in score, and not far
    behind it in meaning alone. An entry that only shares a word with the message ("maths", "photos")
    trails the first by a wide gap; one that is also about the ask is close behind."""
    if second.score < SECOND_SOURCE_RATIO * top.score:
        return False
    return top.score - second.score <= SECOND_SOURCE_GAP


class TemplateComposer:
    """Builds the reply from the integrators' curated notes, questions and links.

    With a `SentenceFit` (a local sentence embedder), the idea and the question are the ones closest in
    meaning to the ask; without one, shared words and cues (an action over a definition) decide.
    """

    name = "template"

    def __init__(self, fit: SentenceFit | None = None) -> None:
        self.fit = fit

    def compose(self, request: CoachingRequest) -> Composition:
        """Answer the ask first (ideas, or a straight answer) or say the goal back; then hand the thinking back."""
        if not request.confident or not request.hits:
            return Composition(self.nothing_found(request.text), [])
        hits = list(request.hits)
        top = hits[0]
        used = [top]
        # A second entry joins only when it is relevant too: otherwise it is noise under the reply.
        if len(hits) > 1 and request.max_sources > 1 and second_is_relevant(top, hits[1]):
            used.append(hits[1])
        asking = " ".join(ask_sentences(request.text)) or request.text
        ask = classify(asking)
        limit = constraint(request.text)
        follow = False
        before = self._previous_ask(request.history)
        if before and ask is Ask.OPEN and (limit is not None or (
                builds_on(request.text) and find_goal(request.text) is None and not concern_openers(request.text)
                and classify(before) is not Ask.OPEN)):
            # "ok but I only get 3 minutes": the last ask, answered again in light of what this message adds.
            follow, ask, asking = True, Ask.IDEAS, f"{before} {request.text}"
        elif before and ask is not Ask.OPEN and len(asking.split()) <= 10 and _REFERS_BACK.search(asking):
            asking = f"{before} {asking}"  # "what would that look like in practice?": that is the last ask
        tool_named = names_tool(request.text)
        said = [t.reply for t in request.history]
        previous = _opening(request.history[-1].reply) if request.history else ""
        if follow:  # what this message adds leads the measure; the last ask says what it is about
            meaning = self._meaning(request.text, asking, used)
        else:
            meaning = self._meaning(asking, request.text, used, request.message_vector)
        if ask is Ask.OPEN:
            lines, closing = self._open(request, used, tool_named, previous, meaning)
        else:
            lines = self._answer(request, used, ask, asking, tool_named, said, previous, meaning,
                                 limit=limit, follow=follow)
            closing = None
        # "No questions please": the straight answer, with nothing handed back.
        if ask is Ask.STRAIGHT and wants_no_questions(request.text):
            kept = [line for line in lines if "?" not in line]
            lines, closing = kept or lines, None
        # A teacher who is stressed, new or had a lesson go badly hears that first, in one short line.
        ack = acknowledgement(request.text, len(request.history))
        if ack and not (limit is Constraint.PRESSURE and follow):  # the students' worry, not the teacher's
            lines = [ack, *lines]
        # An answer keeps its question to the last: the second idea goes first when it is too long.
        text = self._fit(lines, closing, request.max_words, keep_last=ask is not Ask.OPEN)
        # Sources are drawn by the adapter under the reply (a link, or "Read it"), never in the text.
        return Composition(text, [h.entry.id for h in used[: request.max_sources]])

    @staticmethod
    def _previous_ask(history: Sequence[PastTurn]) -> str:
        """The teacher's last coaching message's ask (its ask sentences, or all of it), or '' when none."""
        for turn in reversed(history):
            if turn.route == "coach" and turn.text.strip():
                return " ".join(ask_sentences(turn.text)) or turn.text
        return ""

    def _meaning(self, asking: str, message: str, used: list[Hit], vector: np.ndarray | None = None) -> Meaning | None:
        """Closeness in meaning to the ask of the used entries' sentences and questions; None without an embedder."""
        if self.fit is None:
            return None
        try:
            return self.fit.measure(asking, message, [h.entry for h in used], message_vector=vector).of
        except Exception:  # a refinement only: without it, shared words and cues choose
            log.exception("measuring sentences against the ask failed; choosing by shared words")
            return None

    def _open(self, request: CoachingRequest, used: list[Hit], tool_named: bool,
              previous: str, meaning: Meaning | None = None) -> tuple[list[str], str | None]:
        """A goal or reflection: the goal said back in the teacher's terms, then one or two questions."""
        # The goal or topic is said back only when it reads as plain English; otherwise no echo at all.
        # A concern the message shows is said back in a sentence of our own; a cleanly stated goal in the
        # teacher's terms; the topic only on a first turn (later it is known, and reads as not listening).
        topic = topic_phrase(used[0].entry.title) if not request.history else None
        openers = concern_openers(request.text) or goal_openers(find_goal(request.text), topic)
        close = [h for h in used if h.score >= SECOND_IDEA_RATIO * used[0].score]
        questions = self._questions(close, request.history, prefer_learning=tool_named, meaning=meaning)
        # A named tool puts the learning question first (see _questions); no "before the tool" label.
        lines = [_vary(openers, previous)] if openers else []
        lines.extend(questions)
        coaching_turns = sum(1 for t in request.history if t.route == "coach")
        closing = _CLOSING if coaching_turns >= 2 and len(questions) < 2 and not asked_before(_CLOSING, request.history) \
            else None
        return lines, closing

    def _answer(self, request: CoachingRequest, used: list[Hit], ask: Ask, asking: str, tool_named: bool,
                said: list[str], previous: str, meaning: Meaning | None = None, *,
                limit: Constraint | None = None, follow: bool = False) -> list[str]:
        """A direct ask: the idea that best answers it from the entries used, a sentence said as a suggestion;
        a second idea from the other entry when options were asked for; then one question from the idea's own
        entry. A follow-up's limit ("only 3 minutes") picks the idea that fits it and is said first. The
        sources keep retrieval's order: the idea may come from the second, which is then a near tie."""
        straight = ask is Ask.STRAIGHT
        # "Just tell me: is it ok ...?" is answered by the sentence that weighs it, wherever it sits in the note.
        leaning = straight and verdict(asking) is None
        prefer = CONSTRAINT_CUES[limit] if limit is not None else None
        # The best candidate of each entry; the second entry's must beat the first's by a margin.
        best: list[tuple[float, Hit, str]] = []
        for rank, hit in enumerate(used):
            ranked = scored_sentences(hit.entry, asking, avoid=said, straight=leaning, must_answer=not straight,
                                      fit=meaning, actions=ask is Ask.IDEAS, prefer=prefer)
            if ranked:
                best.append((ranked[0][0] - SECOND_ENTRY_HANDICAP * rank, hit, ranked[0][1]))
        if straight and not best:  # a straight answer comes even from a note of short or plain sentences
            answer = straight_answer(used[0].entry, asking, avoid=said, fit=meaning, prefer=prefer)
            best = [(0.0, used[0], answer)] if answer else []
        if not best:  # nothing in the notes answers it: say so in one line, then the question that lets them go on
            questions = self._questions(used[:1], request.history, prefer_learning=tool_named, meaning=meaning)[:1]
            question = _NO_ANSWER_QUESTION if not asked_before(_NO_ANSWER_QUESTION, request.history) else questions[0]
            return [_NO_ANSWER[len(request.history) % len(_NO_ANSWER)], question]
        best.sort(key=lambda item: -item[0])
        _, chosen, sentence = best[0]
        if leaning:  # a sentence or two from the chosen entry's note
            sentence = straight_answer(chosen.entry, asking, avoid=said, fit=meaning, prefer=prefer) or sentence
            ideas = [self._verdict(asking, sentence, previous) or _vary(_STRAIGHT_LEADS, previous) + sentence]
        elif straight:
            ideas = [self._verdict(asking, sentence, previous) or _vary(_STRAIGHT_LEADS, previous) + sentence]
        elif ask is Ask.QUESTION:
            ideas = [self._verdict(asking, sentence, previous) or _vary(_QUESTION_LEADS, previous) + sentence]
        else:
            ideas = [self._idea(sentence, previous, limit, follow, len(request.history))]
        # "Any ideas?": a second idea from the other entry, when it is nearly as good a match as the first.
        others = [(h, s) for _, h, s in best[1:] if h.score >= SECOND_IDEA_RATIO * used[0].score]
        if ask is Ask.IDEAS and not follow and wants_several(asking) and others:
            second = others[0][1]
            turn = len(request.history)
            ideas.append(phrase_idea(second, form=turn, second=True)
                         or _SECOND_LEADS[turn % len(_SECOND_LEADS)] + second)
        # The question follows on from the idea: it comes from the same entry, the one closest to the ask.
        questions = self._questions([chosen], request.history, prefer_learning=tool_named, meaning=meaning)[:1]
        return [*ideas, *questions]

    @staticmethod
    def _verdict(asking: str, sentence: str, previous: str) -> str | None:
        """"Is it ok ...?", "does it help?": the verdict in a few words, then the note's sentence behind it
        (as a suggestion when it is an instruction); None when the ask is not a yes-or-no question."""
        kind = verdict(asking)
        if kind is None:
            return None
        lead = _vary(_VERDICT_LEADS[(kind, bool(_HEDGED.search(sentence)))], previous)
        return f"{lead} {phrase_idea(sentence) or sentence}"

    @staticmethod
    def _idea(sentence: str, previous: str, limit: Constraint | None, follow: bool, turn: int) -> str:
        """One idea said as a suggestion ("You could ...", "If ..., you could ..."), after the limit a follow-up
        added ("With only a few minutes, you could ..."); quoted after a short lead when it is not an
        instruction (a description reads better whole than rewritten). Never opens as the last reply did."""
        if follow:
            leads = CONSTRAINT_LEADS[limit] if limit is not None else _FOLLOW_LEADS
            lead = _vary(leads, previous) if previous else leads[turn % len(leads)]
            return phrase_idea(sentence, lead=lead) or f"{lead}, note that {_lower_start(sentence)}"
        for form in range(max(len(IDEA_FORMS), len(COND_FORMS))):
            said = phrase_idea(sentence, form=form)
            if said is None:
                break
            if _opening(said) != previous:
                return said
        return _vary(_IDEA_LEADS, previous) + sentence

    @staticmethod
    def _questions(used: list[Hit], history: Sequence[PastTurn], *, prefer_learning: bool,
                   meaning: Meaning | None = None) -> list[str]:
        """One question from each entry used (a second from the best when there is one entry), never one
        asked before in the conversation, the one closest in meaning to the ask first when that is measured;
        when the entries' questions run out, a plain one that hands back."""

        def pool(hit: Hit, chosen: list[str]) -> list[str]:
            unasked = [q for q in hit.entry.questions if not asked_before(q, history) and q not in chosen]
            if meaning is not None:
                # The integrators' order still counts: a question barely closer does not jump the first.
                order = {q: i for i, q in enumerate(unasked)}
                unasked.sort(key=lambda q: -((meaning(q) or 0.0) - QUESTION_ORDER_WEIGHT * order[q]))
            if prefer_learning and not chosen:
                unasked.sort(key=lambda q: 0 if _LEARNING_WORDS.search(q) else 1)
            return unasked

        chosen: list[str] = []
        for hit in used:
            candidates = pool(hit, chosen)
            if candidates:
                chosen.append(candidates[0])
            if len(chosen) == 2:
                break
        if len(chosen) < 2:
            chosen += pool(used[0], chosen)[:1]
        elif meaning is not None and len(used) > 1 and chosen[0] in used[0].entry.questions:
            # The second entry's question only when it fits the ask better than the first entry's next one.
            own = pool(used[0], chosen[:1])
            if own and (meaning(own[0]) or 0.0) > (meaning(chosen[1]) or 0.0):
                chosen[1] = own[0]
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
