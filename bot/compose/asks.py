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


# -- what a follow-up adds: a constraint the next idea must fit ----------------------------------

class Constraint(str, Enum):
    """A limit a teacher adds ("I only get 3 minutes", "they only have my board")."""

    TIME = "time"
    ONE_SCREEN = "one_screen"  # no devices for students: the teacher's board or screen only
    FEW_DEVICES = "few_devices"  # devices to share between groups
    NO_AUDIO = "no_audio"  # a loud room, no headphones
    LANGUAGE = "language"  # families or students with other home languages
    PRESSURE = "pressure"  # students anxious about scores or being seen

_NUM = r"(?:\d+|a few|a couple of|one|two|three|four|five|six|ten|fifteen|twenty)"
_DEVICES = r"(?:devices?|ipads?|tablets?|laptops?|chromebooks?|computers?|pcs?|phones?|robots?|cameras?|printers?)"
_CONSTRAINTS: tuple[tuple[Constraint, re.Pattern[str]], ...] = (
    (Constraint.ONE_SCREEN, re.compile(
        rf"\b(only (?:have |got )?(?:my|the|one|a) (?:board|whiteboard|smart ?board|screen|projector|interactive)|"
        rf"(?:just|only) (?:my|the teacher'?s?) (?:board|screen|projector|laptop|computer)|no {_DEVICES}(?! for the)|"
        rf"(?:don'?t|do not|doesn'?t|does not) have (?:any )?(?:their own )?{_DEVICES}|without {_DEVICES}|"
        rf"no (?:tech|technology) for (?:them|students|the kids))\b", re.I)),
    (Constraint.FEW_DEVICES, re.compile(
        rf"\b(only (?:have |got )?{_NUM} {_DEVICES}|{_NUM} {_DEVICES} (?:for|between|per|to share)|"
        rf"(?:one|a|1) {_DEVICES} (?:per|for each|each) (?:group|table|pair)|(?:have|got) to share (?:the )?{_DEVICES}|"
        rf"(?:only|just) (?:one|a|1) {_DEVICES}|(?:one|a) {_DEVICES} (?:and it'?s|that'?s) slow|share {_DEVICES})\b", re.I)),
    (Constraint.TIME, re.compile(
        rf"\b(only (?:get|have|got)? ?(?:about |around |like )?{_NUM} ?(?:min|mins|minutes)|{_NUM} ?(?:min|mins|minutes) "
        rf"(?:at the end|at the start|before|left|max|tops|a lesson|per lesson|each)|no time|not much time|short on time|"
        rf"(?:tight|pushed|pressed) for time|before the bell|(?:don'?t|do not) have (?:much |the )?time)\b", re.I)),
    (Constraint.NO_AUDIO, re.compile(
        r"\b(no headphones|(?:don'?t|do not) have (?:any )?headphones|(?:room|class) is (?:really |so |very )?"
        r"(?:loud|noisy)|too (?:loud|noisy)|nowhere quiet)\b", re.I)),
    (Constraint.LANGUAGE, re.compile(
        r"\b((?:don'?t|do not|doesn'?t|does not|can'?t) (?:speak|read) (?:much )?english|english (?:is|as) (?:an? )?"
        r"(?:second|additional)|other (?:home )?languages|home languages?|eal|ell|new to english)\b", re.I)),
    (Constraint.PRESSURE, re.compile(
        r"\b(anxious|anxiety|panic about|stressed about|scared of (?:getting|being)|hate being (?:scored|graded|marked)|"
        r"worried about (?:their )?(?:scores|grades|marks|being wrong))\b", re.I)),
)
# Words in a note's sentence that suit each constraint.
CONSTRAINT_CUES: dict[Constraint, re.Pattern[str]] = {
    Constraint.TIME: re.compile(r"\b(minutes?|seconds?|quick\w*|short\w*|brief|one or two|one (question|problem|"
                                r"sentence)|small|end of|start of|few)\b", re.I),
    Constraint.ONE_SCREEN: re.compile(r"\b(whole class|front|board|screen|projector|mini whiteboards?|cards?|paper|"
                                      r"low-tech|without (a )?(computers?|devices?)|unplugged|hands?|one device|"
                                      r"together|drawings?|role-play)\b", re.I),
    Constraint.FEW_DEVICES: re.compile(r"\b(pairs?|groups?|stations?|rotat\w*|turns?|shar\w*|one (tablet|device|"
                                       r"ipad|laptop|printer)|carousel|few)\b", re.I),
    Constraint.NO_AUDIO: re.compile(r"\b(typed?|text|written|captions?|quiet|cupboard|photos?|drawings?|"
                                    r"drawing-only|audio-only)\b", re.I),
    Constraint.LANGUAGE: re.compile(r"\b(translat\w*|home languages?|bilingual|pictures?|photos?|images?|visual|"
                                    r"videos?|interpret\w*)\b", re.I),
    Constraint.PRESSURE: re.compile(r"\b(low[- ]stakes|anonymous\w*|gradebook|safe|no (scores|grades)|mistakes|"
                                    r"hide|private\w*|rehearse|anxious|out of)\b", re.I),
}
# Said first, so the idea is heard as an answer to the limit: "With only a few minutes, you could ...".
CONSTRAINT_LEADS: dict[Constraint, tuple[str, ...]] = {
    Constraint.TIME: ("With only a few minutes", "In a few minutes"),
    Constraint.ONE_SCREEN: ("With just one screen at the front", "Without devices for students"),
    Constraint.FEW_DEVICES: ("With devices to share", "With only a few devices"),
    Constraint.NO_AUDIO: ("In a loud room", "Without headphones"),
    Constraint.LANGUAGE: ("Where English isn't the home language", "For families with other home languages"),
    Constraint.PRESSURE: ("To keep the pressure off", "To take the stakes down"),
}


def constraint(text: str) -> Constraint | None:
    """The limit a message adds, if any: time, one screen, few devices, noise, language or pressure."""
    for kind, pattern in _CONSTRAINTS:
        if pattern.search(text):
            return kind
    return None


# -- a concern said back as a goal, in a sentence of our own rather than an echo ------------------

_CONCERNS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"\b(one (kid|student|child|person) (ends up )?(doing|does)|doing all the|all the (typing|work|"
                r"writing)|'?supervise|quiet(er)? (students|ones|kids)|speak up|dominat\w*|same (few|kids|students)|"
                r"hide behind|don'?t (all )?(take part|contribute|join in))\b", re.I),
     ("So the aim is for every student to take part, not just the confident few.",
      "It sounds like you want everyone contributing, not only a few.")),
    (re.compile(r"\b(cop(y|ying|ies)|skim\w*|think for themselves|just (google|paste)|chatgpt for their|"
                r"surface level|answer machine|sparring partner)\b", re.I),
     ("So the aim is for students to do the thinking themselves rather than copy it.",
      "It sounds like you want their own thinking, not copied answers.")),
    (re.compile(r"\b(memes|spam\w*|off[- ]task|other tabs|zone out|distract\w*|mess(ing)? about|jokes)\b", re.I),
     ("So the aim is to keep their attention on the learning, not the screen.",
      "It sounds like the tool is pulling their focus away from the task.")),
    (re.compile(r"\b(who can see|who would (even )?read|privacy|strangers|randoms|public|safe online|"
                r"who sees)\b", re.I),
     ("So the worry is who sees students' work, and keeping it safe.",
      "It sounds like keeping their work safe and seen by the right people matters most here.")),
    (re.compile(r"\b(same lesson|just (a )?(replac\w*|substitut\w*)|substitution|digital worksheet|"
                r"couldn'?t (do )?before|something new)\b", re.I),
     ("So you want the technology to change what students can do, not just replace the textbook.",
      "It sounds like you want the devices to add something a textbook couldn't.")),
    (re.compile(r"\b(easiest option|easy option|all pick|pick the easiest)\b", re.I),
     ("So the aim is real choice, without everyone drifting to the easiest option.",
      "It sounds like you want choices that are equally demanding.")),
    (re.compile(r"\b(care about|feel(s)? far away|relevant|real world|connect (it|this) to their)\b", re.I),
     ("So the aim is to make it feel real and close to home for them.",
      "It sounds like you want the topic to matter to them personally.")),
    (re.compile(r"\b(good job|feedback)\b.*\b(mean|useless|vague|nice|kind)\b|\b(mean|vague) feedback\b", re.I),
     ("So the aim is feedback between students that is specific and kind.",
      "It sounds like you want their feedback to each other to be useful, not just nice or harsh.")),
)


def concern_openers(text: str) -> list[str]:
    """The teacher's concern said back as a goal in a well-formed sentence of its own; empty when the
    message shows none of the concerns known here."""
    for pattern, lines in _CONCERNS:
        if pattern.search(text):
            return list(lines)
    return []


# A message that builds on the last reply ("and", "ok but", "the thing is"), without an ask of its own.
_FOLLOW_ON = re.compile(r"^\s*(ok(ay)?|yeah|yes|right|sure|hmm+|and|but|also|though|the thing is|problem is|"
                        r"the problem is|we did|we already|they already|already|only|we only|they only|i only|"
                        r"still|thing is)\b", re.I)


def builds_on(text: str) -> bool:
    """Whether a message reads as a follow-up to the last reply rather than a new topic."""
    return bool(_FOLLOW_ON.search(text)) or len(text.split()) <= 14
