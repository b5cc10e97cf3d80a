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
    r"(i )?(don'?t|do not) (need|want) (any |more |your |all these |the )?questions|"
    r"just (the|an|a) (answer|name|tool|app)\b|just (need|want) (the|an|a) (answer|name|tool|app)|"
    r"skip the questions|i just (want|need) (an|the|a) (answer|tool|app|idea|name))\b", re.I)
_IDEAS = re.compile(
    r"\b(what (could|can|should|might|would|do) (they|students|pupils|kids|the kids|the class|my class|we|i|"
    r"(?:my|our)(?: [\w'-]+){1,2}) (make|do|create|build|produce|use|try|record|write|design)|"
    r"any (good )?(ideas|suggestions|tips|recommendations|thoughts|advice)|"
    r"(ideas|suggestions|tips) (for|on|about)|"
    r"(which|what) (tool|tools|app|apps|platform|platforms|website|websites|software|site|sites|program)\b|"
    r"(can|could) you (suggest|recommend)|(suggest|recommend)(ations?)? (a|an|some|any)|"
    r"what'?s?( is| are| would be)? (the |a |an |some )?(good|easy|easiest|quick|quickest|simple|simplest|better|best|fun|"
    r"great|nice|free|cheap|cheapest|right) [\w-]+|"
    r"(what|how) would you (use|suggest|recommend|do|try|approach|set)|"
    r"(is|are) there (a|an|any) ((good|easy|quick|simple|better|free) )?(tool|app|way|site|program|resource)|"
    r"(where|how) (can|do|could|should) (i|we) (find|start|begin|get started)|"
    r"how (can|could|do|should|might|would) (i|we|they|students|the kids|my [\w'-]+|our [\w'-]+) |how to |"
    r"(how|what) about |what if |anything (i|we) (can|could) (use|try|do)|"
    # "...ideas?", "any way to ...", "what can I do instead?", "what would it look like in practice?"
    r"ideas\s*\?|any (other )?ways? (to|of|i|we)|how (can|could|might|would|does|do) [\w-]+ help|what (else )?(can|could|should) (i|we) do|what would you do|"
    r"where (do|should|would) (i|we) (even )?(start|begin)|what (would|does|might|could) (it|that|this) look like|"
    r"in practice\s*\?|(an|for) example\s*\?)", re.I)
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


# "No questions please", "just tell me": the teacher wants the answer and nothing handed back.
_NO_QUESTIONS = re.compile(
    r"\b((?<!not )just (tell|give|show) me|tell me straight|(a|the) straight answer|just answer|just (the|an) answer\b|"
    r"(stop|don'?t|no need to) (asking|ask) (me )?(questions|anything)|no (more )?questions|"
    r"(i )?(don'?t|do not) (need|want) (any |more |your |all these |the )?questions|skip the questions)\b", re.I)


class Verdict(str, Enum):
    """What a yes-or-no question weighs: whether something is allowed, or whether it is worth it."""

    PERMISSION = "permission"  # "is it ok / allowed / safe / legal ...?"
    VALUE = "value"  # "does it help / work / is it worth ...?"


# "How can tech help with that?" asks for ideas, not a yes or no.
_WH_AUX = re.compile(r"\b(how|what|which|where|why|who|when)\s+(does|do|will|would|can|could|is|are|should|might)\b",
                     re.I)
_PERMISSION = re.compile(r"\b(allowed|ok|okay|fine|safe|legal|appropriate|permitted)\b", re.I)


def verdict(text: str) -> Verdict | None:
    """The kind of yes-or-no question in the message, or None when it asks no verdict."""
    found = [s for s in sentences(text) if _VERDICT.search(s) and not _WH_AUX.search(s)]
    if not found:
        return None
    return Verdict.PERMISSION if any(_PERMISSION.search(s) for s in found) else Verdict.VALUE


def wants_no_questions(text: str) -> bool:
    """"No questions please", "just tell me": a reply to this gives the answer and asks nothing back."""
    return bool(_NO_QUESTIONS.search(text))


# A teacher who says they are stressed, new or that a lesson went badly hears that first.
_FEELING = re.compile(
    r"\b(stress(ed|ful)?|overwhelm(ed|ing)?|exhaust(ed|ing)|frustrat(ed|ing)|fed up|drowning|"
    r"anxious|panick?(ed|ing)|burn(ed|t) out|at my wits'? end|(i'?m|i am) struggling|"
    r"nqt|ect|newly qualified|early career|first[- ]year( teacher)?|(my )?first year|new (to|at) (teaching|this)|"
    r"new teacher|just started teaching|student teacher|trainee|"
    r"(went|gone|going) (badly|terribly|horribly|wrong|awfully|pear-shaped)|(was|were) (a )?(disaster|chaos|"
    r"nightmare|mess)|total (disaster|chaos)|fell apart|fell flat|bombed|didn'?t go well|awful lesson|bad lesson)\b",
    re.I)
_NEW = re.compile(r"\b(nqt|ect|newly qualified|early career|first[- ]year|first year|new (to|at) (teaching|this)|"
                  r"new teacher|just started teaching|student teacher|trainee)\b", re.I)
_BADLY = re.compile(r"\b((went|gone|going) (badly|terribly|horribly|wrong|awfully|pear-shaped)|disaster|chaos|"
                    r"nightmare|mess|fell apart|fell flat|bombed|didn'?t go well|awful lesson|bad lesson)\b", re.I)
_ACK_NEW = ("The first years are a lot to carry, and asking is a good sign.", "Starting out is demanding; you're right to ask.",
            "Plenty of experienced teachers asked the same in their first year.")
_ACK_BADLY = ("Lessons like that happen to every teacher, and it's worth looking at.",
              "Sorry that one went badly; it says nothing about what the next one can be.",
              "That sounds like a hard lesson, and it's good you're picking it apart.")
_ACK_STRESS = ("That sounds like a lot right now.", "That's a heavy load; let's keep this small.",
               "I hear you, that's frustrating.")


def acknowledgement(text: str, turn: int = 0) -> str | None:
    """One short, genuine line for a teacher who is stressed, new or had a lesson go badly; None otherwise.
    `turn` varies the wording across a conversation so it never reads as a formula."""
    if not _FEELING.search(text):
        return None
    options = _ACK_NEW if _NEW.search(text) else _ACK_BADLY if _BADLY.search(text) else _ACK_STRESS
    return options[(turn + len(text)) % len(options)]


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
    if not _clean_clause(words):
        return None
    return second_person(text)


# Words a goal clause may not open with (it is then a fragment: "to from", "to the") or hold (a
# half-finished thought): said back, they read as a mangled echo.
_NOT_A_VERB = {"the", "a", "an", "from", "with", "of", "for", "and", "or", "but", "so", "it's", "its", "this",
               "that", "to", "at", "in", "on", "by", "about", "like", "um", "erm", "uh", "idk", "etc"}
_DANGLING_END = {"from", "about", "into", "onto", "like", "by", "than", "as", "between", "through", "via", "my",
                 "your", "our", "their", "this", "that", "these", "those", "some", "any", "every", "each",
                 "is", "are", "was", "be",
                 # a goal that ends in a comparison or a vague word leans on context the echo lacks
                 # ("push one unit higher", "do it better"): said back alone, it means nothing
                 "higher", "lower", "better", "worse", "further", "up", "down", "there", "here",
                 "things", "stuff", "something", "anything", "somehow", "again", "too", "well", "them", "it"}
_MESSY = re.compile(r"\.\.\.|…|\betc\b|\b(um|erm|uh|idk|lol|tbh|smth|sth|w/|b/c)\b|[\"“”()\[\]{}*_#/\\|<>=+@]", re.I)


def _clean_clause(words: list[str]) -> bool:
    """A goal said back must read as a clean clause: it opens with a verb-like ordinary word, has no
    fillers, brackets or trailing-off."""
    first = words[0]
    if words[-1].lower() in _DANGLING_END:  # "start from", "make it like": the thought trails off
        return False
    if first.lower() in _NOT_A_VERB or not re.fullmatch(r"[a-z][a-z'-]*", first):
        return False
    text = " ".join(words)
    return not _MESSY.search(text)


def find_goal(text: str) -> Goal | None:
    """The goal a message states, in the second person, or None when none is stated cleanly."""
    for sentence in sentences(text):
        for pattern, shape in ((_GOAL_WHO, "who"), (_GOAL_TO, "to"), (_HOW_THEY, "how_they"), (_HOW, "how")):
            m = pattern.search(sentence)
            if not m:
                continue
            goal = _clean(m.group("goal"))
            if goal is None or re.match(r"\s*(\.\.|…)", sentence[m.end("goal"):]):  # trailing off: no echo
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


def goal_openers(goal: Goal | None, topic: str | None) -> list[str]:
    """Ways to say the goal back, most plain first; the topic (an entry's title) when no goal is stated;
    none when neither can be said cleanly."""
    if goal is None:
        return [t.format(topic=topic) for t in _TOPIC_OPENERS] if topic else []
    return [t.format(goal=goal.words, who=goal.who) for t in _GOAL_OPENERS[goal.shape]]


def reflect_goal(text: str) -> str | None:
    """The teacher's goal in one natural sentence, turned to 'you', or None when none is stated."""
    goal = find_goal(text)
    return goal_openers(goal, "")[0] if goal else None


# Names that keep their capital at the start of a title ("Google Classroom routines", "Padlet walls").
_PROPER_FIRST = {"google", "microsoft", "youtube", "padlet", "canva", "kahoot", "quizlet", "seesaw", "flip",
                 "flipgrid", "desmos", "geogebra", "scratch", "scratchjr", "minecraft", "tinkercad", "canvas",
                 "teams", "onenote", "nearpod", "mentimeter", "blooket", "edpuzzle", "chatgpt", "gemini",
                 "copilot", "claude", "book", "adobe", "apple", "zoom", "moodle", "schoology", "wakelet",
                 "loom", "screencastify", "garageband", "audacity", "excel", "powerpoint", "word", "forms",
                 "english", "french", "spanish", "german", "maths", "bloom's", "triple", "immersive"}


def lower_first(title: str) -> str:
    """A title inside a sentence: 'Running a backchannel' -> 'running a backchannel'. Only an ordinary
    first word is lowered: 'AI tools', 'SAMR in practice', 'iPad routines', 'YouTube clips',
    'Google Classroom' and 'Desmos' keep their case, and no other word is ever touched."""
    words = title.split(" ")
    first = words[0]
    ordinary = re.fullmatch(r"[A-Z][a-z'-]*", first) is not None and first.lower() not in _PROPER_FIRST
    # "Book Creator projects": two capitalised words in a row are a name ("Using AI tools" is not).
    if ordinary and len(words) > 1 and re.fullmatch(r"[A-Z][a-z'-]+\W*", words[1]):
        ordinary = False
    return " ".join([first[0].lower() + first[1:]] + words[1:]) if ordinary else title


# A title that opens with one of these is an instruction or a fragment ("Start from the goal", "Use
# fewer tools"), not a topic: "You're thinking about start from ..." is not English.
_IMPERATIVE = {"start", "use", "make", "keep", "try", "build", "get", "let", "plan", "choose", "teach", "give",
               "ask", "stop", "avoid", "think", "don't", "do", "set", "run", "create", "help", "check", "turn",
               "put", "take", "move", "go", "find", "write", "record", "share", "design", "bring", "hold",
               "pick", "add", "swap", "review", "mix", "reduce", "cut", "limit", "protect", "begin", "learn",
               "focus", "match", "explore", "embed", "invite", "flip", "post", "show", "tell", "model", "say",
               "from", "to", "for", "with", "and", "or", "but", "if", "is", "are", "can", "should", "will"}


def topic_phrase(title: str) -> str | None:
    """An entry's title as a topic to say back ("using AI chatbots with students"), or None when the title
    is not a noun phrase (an instruction, a question, a title with a colon or dash) and would read badly."""
    title = title.strip()
    if not title or re.search(r"[:?!;—–]| - |\(|\)", title):
        return None
    first = title.split()[0].lower()
    if first in _IMPERATIVE:
        return None
    return lower_first(title)
