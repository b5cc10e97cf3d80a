"""A note's sentence said to the teacher as a suggestion, in natural second person.

Integrators write their notes about teachers ("Many teachers start with ...", "the teacher can ...")
or as instructions ("Set norms beforehand ..."). Quoted as they stand after "One idea:", the first
reads like a report and the second like an order. An instruction or a sentence about what teachers
do is turned into "you could ..."; anything else is left as written, because rewriting a
description can mangle it.
"""

from __future__ import annotations

import re

# Verbs a note's instruction opens with ("Give students a real example ...").
IMPERATIVE_VERBS = frozenset(
    "add agree aim allow anchor ask assign begin blend bring build break check choose collect combine compare "
    "create decide design display divide encourage end explain focus follow frame give group have hide "
    "include invite keep let limit link look make map match mix model name narrow offer open pair partner "
    "pause pick plan play post practise practice prepare print put record rehearse require rotate run save "
    "schedule select send set share show spend split start stick swap switch take teach tell test think tie "
    "treat try turn use vary watch write".split())
# "If the chat drifts into jokes, narrow the prompt": a condition, then the instruction.
_CONDITION = re.compile(r"^(?P<cond>(?:if|when|once|for|with|before|after|during|where|in)\b[^,;:]{3,80}),\s+"
                        r"(?P<rest>.+)$", re.I)
# "Many teachers start with ...", "Teachers can ...", "The teacher can ...": said to the teacher as "you".
_ABOUT_TEACHERS = re.compile(r"^(?:(?:many|some|most|other|experienced) teachers|teachers)\s+(?:can\s+|could\s+|"
                             r"often\s+|usually\s+)?(?P<rest>[a-z].+)$", re.I)
_THE_TEACHER_MODAL = re.compile(r"^(?:the teacher|teachers)\s+(?:can|could|might|should)\s+(?P<rest>[a-z].+)$", re.I)
# A sentence still talking about "the teacher" after the rewrite would read as about someone else.
_THIRD_PERSON = re.compile(r"\b(the teacher|teachers|the teacher's|teachers')\b", re.I)
# Forms of "the teacher <verb>" that turn cleanly into "you <verb>".
_TEACHER_VERBS = {"is": "are", "has": "have", "gets": "get", "sees": "see", "hears": "hear", "knows": "know",
                  "needs": "need", "can": "can", "could": "could", "should": "should", "will": "will",
                  "must": "must", "may": "may", "might": "might", "does": "do", "wants": "want"}
_TEACHER_SUBJECT = re.compile(r"\bthe teacher (?P<verb>\w+)\b", re.I)
# A warning is worth knowing but is not something to try: "watch for ...", "take care with ...".
_NEGATIVE = re.compile(r"^(don'?t|do not|never|avoid|stop|watch (for|out)|take (particular )?care|be careful)\b", re.I)


def _to_you(text: str) -> str | None:
    """'so the teacher sees ...' -> 'so you see ...'; None when 'the teacher' is left in another role."""
    def swap(m: re.Match[str]) -> str:
        verb = m.group("verb").lower()
        return f"you {_TEACHER_VERBS[verb]}" if verb in _TEACHER_VERBS else m.group(0)

    text = _TEACHER_SUBJECT.sub(swap, text)
    text = re.sub(r"\bthe teacher's\b", "your", text, flags=re.I)
    return None if _THIRD_PERSON.search(text) else text


def _instruction(clause: str) -> str | None:
    """An instruction clause with its verb lowered ('Narrow the prompt' -> 'narrow the prompt'), or None."""
    first = clause.split(" ", 1)[0]
    if first.lower().strip(",") not in IMPERATIVE_VERBS or not re.fullmatch(r"[A-Za-z]+", first):
        return None
    # "Record" in "Record keeping is ..." is a noun: an instruction's verb is followed by its object.
    if re.match(r"^\w+\s+(is|are|was|were|can|will|has|have)\b", clause, re.I):
        return None
    return first.lower() + clause[len(first):]


def suggestion(sentence: str) -> tuple[str, str] | None:
    """The sentence as (condition, action) to say after "you could": ('', 'set norms beforehand ...') or
    ('if the chat drifts into jokes', 'narrow the prompt ...'); None when it is not an instruction or a
    sentence about what teachers do (a description is better quoted than rewritten)."""
    text = sentence.strip().rstrip(".")
    if not text or _NEGATIVE.match(text) or "?" in text or ";" in text and len(text.split()) > 30:
        return None
    cond = ""
    m = _CONDITION.match(text)
    if m and _instruction(m.group("rest")):
        cond, text = m.group("cond"), m.group("rest")
    action = _instruction(text)
    if action is None and not cond:
        about = _THE_TEACHER_MODAL.match(text) or _ABOUT_TEACHERS.match(text)
        if about and _instruction(about.group("rest")):
            action = _instruction(about.group("rest"))
    if action is None or _NEGATIVE.match(action):
        return None
    action = _to_you(action)
    if action is None:
        return None
    if cond:
        cond = _to_you(cond[0].lower() + cond[1:]) or ""
        if not cond:
            return None
    return cond, action


def is_suggestion(sentence: str) -> bool:
    """Whether the sentence proposes something to do that can be said as "you could ..."."""
    return suggestion(sentence) is not None


# Ways to offer an action; a conversation's consecutive replies open differently (see templates._vary).
IDEA_FORMS = ("You could {action}.", "One option is to {action}.", "It may help to {action}.")
# With a condition first: "If the chat drifts into jokes, you could narrow the prompt ...".
COND_FORMS = ("{Cond}, you could {action}.", "{Cond}, it may help to {action}.", "{Cond}, one option is to {action}.")
SECOND_FORMS = ("Or you could {action}.", "Another option is to {action}.")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def phrase_idea(sentence: str, form: int = 0, second: bool = False, lead: str = "") -> str | None:
    """The note's sentence as a suggestion in the second person, or None when it cannot be said as one.
    `form` picks a wording (varied across a conversation); `lead` puts a constraint first
    ("With only a few minutes"), then "you could ..."."""
    parts = suggestion(sentence)
    if parts is None:
        return None
    cond, action = parts
    if lead:
        # "With only a few minutes, you could ..." (a note's own condition is kept after it when short).
        tail = f" {cond}" if cond and len(cond.split()) <= 6 else ""
        return f"{lead}, you could {action}{tail}."
    if cond:
        return COND_FORMS[form % len(COND_FORMS)].format(Cond=_cap(cond), action=action)
    forms = SECOND_FORMS if second else IDEA_FORMS
    return forms[form % len(forms)].format(action=action)
