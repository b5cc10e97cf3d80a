"""What a teacher's message asks for, and the goal in it said back in natural English.

Real messages are a story, a complaint and then half a question; the ask is usually one
sentence in the middle. These functions find that sentence and name the kind of ask, so the
composer can answer it before handing the thinking back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Ask(str, Enum):
    """The kind of reply a message wants first."""

    STRAIGHT = "straight"  # "just tell me": a short, straight answer (still no walkthrough)
    IDEAS = "ideas"  # "what could they make", "any ideas", "which tool", "how can I ...": one or two ideas
    QUESTION = "question"  # "does that help?", "is that allowed?", "how long should it be?": a short answer
    OPEN = "open"  # a goal or a reflection: say it back, then ask


_STRAIGHT = re.compile(
    r"\b((?<!not )just (tell|give|show) me|tell me straight|(a|the) straight answer|straight up|just answer|"
    r"(stop|don'?t|no need to) (asking|ask) (me )?(questions|anything)|no (more )?questions|"
    r"skip the questions|i just (want|need) (an|the|a) (answer|tool|app|idea|name))\b", re.I)
_IDEAS = re.compile(
    r"\b(what (could|can|should|might|would|do) (they|students|pupils|kids|the kids|the class|my class|we|i|my \w+|"
    r"our \w+) (make|do|create|build|produce|use|try|record|write|design)|"
    r"any (good )?(ideas|suggestions|tips|recommendations|thoughts|advice)|"
    r"(ideas|suggestions|tips) (for|on|about)|"
    r"(which|what) (tool|tools|app|apps|platform|platforms|website|websites|software|site|sites|program)\b|"
    r"(can|could) you (suggest|recommend)|(suggest|recommend)(ations?)? (a|an|some|any)|"
    r"what'?s?( is| are| would be)? (the |a |some )?(good|easy|easiest|quick|quickest|simple|simplest|better|best|fun|"
    r"great|nice|free|cheap|cheapest|right) [\w-]+|"
    r"(what|how) would you (use|suggest|recommend|do|try|approach|set)|"
    r"(is|are) there (a|an|any) ((good|easy|quick|simple|better|free) )?(tool|app|way|site|program|resource)|"
    r"(where|how) (can|do|could|should) (i|we) (find|start|begin|get started)|"
    r"how (can|could|do|should|might|would) (i|we|they|students|the kids|my [\w'-]+|our [\w'-]+) |how to |"
    r"(how|what) about |what if |anything (i|we) (can|could) (use|try|do))", re.I)
# "Does that actually help?", "is it ok to...?", "is voice feedback worth a try?": a verdict, briefly.
_VERDICT = re.compile(
    r"^(?:.*\b)?(does|do|will|would|can|could|is|are|should|am)\b[^?]*\b(help|helps|work|works|worth|allowed|ok|okay|"
    r"fine|safe|legal|gimmick|effective|good idea|appropriate|matter|better)\b[^?]*\?", re.I)
# A plain question the notes can answer ("how long should the first episodes be?"); "thoughts?" stays open.
_WH_QUESTION = re.compile(r"(?:^|, )(?:\w+,? )?(?:and |but |so |ok |okay )?(how (long|many|much|often|big|old)|when|where|what|which|"
                          r"who|should|can|could|is|are|does|do|will|would)\b[^?]{6,}\?", re.I)
_SEVERAL = re.compile(r"\b(ideas|suggestions|options|ways|tools|apps|activities|projects|examples|what (could|can|might) "
                      r"\w+ (make|do|create|build))\b", re.I)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The message's sentences (and lines), trimmed, empty ones dropped."""
    return [s.strip() for s in _SENTENCES.split(text) if s and s.strip()]


def ask_sentences(text: str) -> list[str]:
    """The sentences that carry the ask: questions and request patterns; empty when none do."""
    found = [s for s in sentences(text) if "?" in s or _IDEAS.search(s) or _STRAIGHT.search(s)]
    return found


def classify(text: str) -> Ask:
    """What the message wants first: a straight answer, ideas, or room to think."""
    if _STRAIGHT.search(text):
        return Ask.STRAIGHT
    if _IDEAS.search(text):
        return Ask.IDEAS
    if any(_VERDICT.search(s) or _WH_QUESTION.search(s) for s in sentences(text)):
        return Ask.QUESTION
    return Ask.OPEN


def wants_several(text: str) -> bool:
    """"Any ideas?", "what could they make?": the ask is for options, so a second idea is welcome."""
    return bool(_SEVERAL.search(text))


# -- the goal, said back ------------------------------------------------------------------------

_PRONOUNS = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "we": "you",
    "us": "you", "our": "your", "ours": "yours", "ourselves": "yourselves", "i'm": "you're", "i've": "you've",
    "we're": "you're", "we've": "you've", "am": "are", "i'd": "you'd", "we'd": "you'd", "i'll": "you'll",
    "we'll": "you'll",
}
_WANT = (r"(?:want|would like|'d like|need|hope|am hoping|are hoping|'m hoping|'re hoping|am trying|are trying|"
         r"'m trying|'re trying|plan|am planning|'m planning|are planning|'re planning|wish)")
# "I want to X" / "we're trying to X"
_GOAL_TO = re.compile(rf"(?:^|\b(?:i|we)\s?){_WANT} to (?P<goal>[^.?!\n]+)", re.I)
# "I want my year 5s to X", "I'd like them to X"
_GOAL_WHO = re.compile(
    rf"(?:^|\b(?:i|we)\s?){_WANT} (?P<who>(?:my|our|the|all|some|them|each)(?: [\w'-]+){{0,3}}?) to (?P<goal>[^.?!\n]+)", re.I)
_HOW = re.compile(r"\bhow (?:do|can|could|should|would|might) (?:i|we) (?P<goal>[^.?!\n]+)", re.I)
_HOW_THEY = re.compile(r"\bhow (?:do|can|could|should|would|might|will) (?P<who>(?:my|our) [\w'-]+(?: [\w'-]+)?) "
                       r"(?P<goal>[^.?!\n]+)", re.I)
# Where a goal stops being the goal: the reason, the complaint or the next clause.
_CLAUSE_END = re.compile(r"\s*(?:,|;|:| - | – | — |\bbut\b|\bso that\b|\bbecause\b|\bsince\b|\band then\b|"
                         r"\bwithout\b|\bwhile\b|\bwhen\b|\bif\b|\bthough\b)", re.I)
MAX_GOAL_WORDS = 14
_TRAILING_WORDS = {"and", "or", "to", "the", "a", "an", "of", "with", "for", "in", "on", "at", "but", "so", "it"}


@dataclass(frozen=True)
class Goal:
    """The teacher's goal, turned to 'you': which shape it had, and its words."""

    shape: str  # "to" (you want to X), "who" (you want your class to X), "how" (how to X), "how_they"
    words: str
    who: str = ""


def second_person(phrase: str) -> str:
    """'my class' -> 'your class': the teacher's words said back to them."""
    out = []
    for word in phrase.split():
        bare = word.lower().strip(",.")
        swapped = _PRONOUNS.get(bare)
        out.append(word if swapped is None else swapped + word[len(bare):] if word.lower().startswith(bare) else swapped)
    return " ".join(out)


def _clean(goal: str) -> str | None:
    goal = _CLAUSE_END.split(goal, maxsplit=1)[0].strip(" ,;:-–—")
    words = goal.split()
    while words and words[-1].lower() in _TRAILING_WORDS:
        words.pop()
    # A goal too long to say back whole is better not echoed at all than cut mid-thought.
    if len(words) < 2 or len(words) > MAX_GOAL_WORDS:
        return None
    text = " ".join(words)
    if re.search(r"\b(you|your)\b", text, re.I):  # "I want you to ..." is a request to the coach, not a goal
        return None
    return second_person(text)


def find_goal(text: str) -> Goal | None:
    """The goal a message states, in the second person, or None when none is stated cleanly."""
    for sentence in sentences(text):
        for pattern, shape in ((_GOAL_WHO, "who"), (_GOAL_TO, "to"), (_HOW_THEY, "how_they"), (_HOW, "how")):
            m = pattern.search(sentence)
            if not m:
                continue
            goal = _clean(m.group("goal"))
            if goal is None:
                continue
            who = second_person(m.group("who")) if "who" in pattern.groupindex else ""
            return Goal(shape, goal, who)
    return None


_GOAL_OPENERS: dict[str, tuple[str, ...]] = {
    "to": ("You want to {goal}.", "So the aim is to {goal}.", "It sounds like you're hoping to {goal}."),
    "who": ("You want {who} to {goal}.", "So the aim is for {who} to {goal}.",
            "It sounds like you'd like {who} to {goal}."),
    "how": ("You're working out how to {goal}.", "So the question is how to {goal}.",
            "You're looking for a way to {goal}."),
    "how_they": ("You're asking how {who} can {goal}.", "So the question is how {who} can {goal}.",
                 "You're looking for a way for {who} to {goal}."),
}
_TOPIC_OPENERS = ("You're thinking about {topic}.", "This sounds like a question about {topic}.",
                  "So this is about {topic}.")


def goal_openers(goal: Goal | None, topic: str) -> list[str]:
    """Ways to say the goal back, most plain first; the topic (an entry's title) when no goal is stated."""
    if goal is None:
        return [t.format(topic=topic) for t in _TOPIC_OPENERS]
    return [t.format(goal=goal.words, who=goal.who) for t in _GOAL_OPENERS[goal.shape]]


def reflect_goal(text: str) -> str | None:
    """The teacher's goal in one natural sentence, turned to 'you', or None when none is stated."""
    goal = find_goal(text)
    return goal_openers(goal, "")[0] if goal else None


def lower_first(title: str) -> str:
    """A title inside a sentence: 'Running a backchannel' -> 'running a backchannel'; 'AI tools' stays."""
    if len(title) > 1 and title[0].isupper() and title[1].islower():
        return title[0].lower() + title[1:]
    return title
