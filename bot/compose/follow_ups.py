"""What a follow-up adds: a limit the next idea must fit, a concern said back, and whether a message
builds on the last reply rather than opening a new topic."""

from __future__ import annotations

import re
from enum import Enum


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
