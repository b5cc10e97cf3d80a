"""The short replies for routes that are not coaching: helpdesk, a person, small talk."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.settings import Settings
from bot.models import Action, Route
from bot.triage.categories import Category
from bot.triage.router import Decision

_ROOM = re.compile(r"\b(room|rm|classroom|lab|library|hall|gym|portable|staff ?room|office|block|wing|building)\b\s*\w*", re.I)
_DEVICE = re.compile(
    r"\b(projector|smart ?board|board|screen|monitor|printer|camera|speakers?|laptops?|chromebooks?|ipads?|"
    r"tablets?|computer|pc|mac|cart|wi-?fi|network|printer|phone|app|account|password|email|canvas|seesaw|"
    r"teams|zoom|google|lms|portal)\b", re.I)
_SCREEN = re.compile(r"\b(says|said|shows|showing|message|error|code|screen|light|blinking|flashing|stuck|no signal)\b|\"", re.I)
_URGENT = re.compile(
    r"\b(right now|now|asap|urgent\w*|immediately|in \d+ ?(min|mins|minutes)|this (lesson|period)|"
    r"class (is )?waiting|(test|exam|assessment) (in|at|today)|can'?t teach)\b|!!", re.I)


def helpdesk_missing(text: str, category: str) -> list[str]:
    """What a technician needs that the teacher has not said yet."""
    missing = []
    if category == Category.ACCOUNT:
        if not _DEVICE.search(text):
            missing.append("which system or app it is")
        if not _SCREEN.search(text):
            missing.append("the exact message you see")
        return missing
    if not _DEVICE.search(text):
        missing.append("which device it is (a label or asset tag helps)")
    if not _ROOM.search(text):
        missing.append("which room you're in")
    if not _SCREEN.search(text):
        missing.append("what's on the screen (any error message or lights)")
    return missing


def is_urgent(text: str) -> bool:
    """A class waiting now, a test in twenty minutes: the helpdesk should know."""
    return bool(_URGENT.search(text))


def helpdesk_reply(text: str, decision: Decision, ticket: str, created: bool, settings: Settings,
                   live: bool = True) -> str:
    """The helpdesk reply; `live` when the platform can tell the teacher later that someone picked it up."""
    kind = "an account or access problem" if decision.category is Category.ACCOUNT else "a technical fault"
    if created:
        head = f"That sounds like {kind}, so it's one for the IT helpdesk: I've raised ticket {ticket} for you."
    else:
        head = f"Thanks, I've added that to ticket {ticket}."
    missing = helpdesk_missing(text, decision.category)
    ask = ""
    if missing:
        ask = " To save the technician a trip, could you tell me " + _join(missing) + "?"
    later = "I'll tell you here when someone picks it up." if live else f"Quote {ticket} if you chase it."
    when = f" The helpdesk usually responds {settings.handoff.helpdesk_response}. {later}"
    if is_urgent(text):
        # Who and roughly when, even in a hurry.
        when = f" I've marked it urgent because your class is waiting, so the helpdesk sees it first. {later}"
    return head + ask + when


_BY = (("email", "by e-mail"), ("slack", "on Slack"), ("teams", "in Teams"), ("webhook", "in the school's ticket system"))


def delivery_words(channels: Sequence[str]) -> str:
    """How a handoff travels, as a teacher reads it: `by e-mail and on Slack`."""
    words = [phrase for key, phrase in _BY if any(key in c for c in channels)]
    return _join(words)


def integrator_reply(decision: Decision, ticket: str, created: bool, settings: Settings,
                     reached: Sequence[str] = ()) -> str:
    """The reply when a person is needed; `reached` names the channels the handoff is being sent to.

    For a safeguarding concern those are the safeguarding lead's own channels, and the reply says
    exactly who was told; with none, it says nobody has been told yet and whom to go to now.
    """
    who, when = settings.handoff.integrator_name, settings.handoff.integrator_response
    sg = settings.safeguarding
    if decision.category is Category.SAFEGUARDING:
        keep = ("If a child may be in immediate danger, contact emergency services now. "
                "Please don't investigate further or ask the student to repeat it; write down what you saw or were "
                "told, in their words, with the time.")
        if reached:
            return (
                f"Thank you for telling me; this needs a person, not a coach. I've sent what you told me to "
                f"{sg.contact_name} {delivery_words(reached)} (ref {ticket}), and to nobody else. Please still follow "
                f"{sg.procedure} and speak to {sg.contact_name} {sg.contact_detail} today. {keep}"
            )
        return (
            "Thank you for telling me; this needs a person, not a coach. I can't pass this on automatically, so "
            f"no one has been told yet: please go to {sg.contact_name} now, in person ({sg.contact_detail}), and "
            f"follow {sg.procedure}. {keep} (ref {ticket})"
        )
    if decision.category is Category.DATA_INCIDENT:
        head = ("Thanks for flagging this quickly. If you can, stop the sharing now (turn off link access or "
                f"recall the message), then report it to {sg.contact_name} {sg.contact_detail} and the school's "
                "data protection lead today.")
        if reached:
            return f"{head} I've alerted {who} urgently (ref {ticket}) so someone can help you through it."
        return (f"{head} I can't alert anyone automatically, so no one has been told yet (ref {ticket}): "
                "please tell them yourself now.")
    if not created:
        return f"I've added this to your request with {who} (ref {ticket}); they'll be in touch {when}."
    if decision.category is Category.FRUSTRATION:
        return (
            f"I'm sorry this hasn't been helping. I've passed our conversation to {who} (ref {ticket}), "
            f"and someone will follow up {when}. What would be most useful for them to know before they get in touch?"
        )
    if decision.category is Category.COMPLEX:
        return (
            f"That's a big, worthwhile piece of planning, and it deserves a person: I've asked {who} to set up "
            f"a co-planning conversation (ref {ticket}); they'll be in touch {when}. "
            "Before you meet, what's the one thing you most want students to get out of it?"
        )
    return (
        f"Of course. I've asked {who} to get in touch {when} (ref {ticket}). "
        "So the time together counts, what would you most like to work on?"
    )


def other_reply(decision: Decision, *, first_turn: bool) -> str:
    if decision.category is Category.SMALLTALK:
        if first_turn:
            return (
                "Hi! I'm the integration coach. Ask me anything about using technology for learning, "
                "from a first try to a whole project; tech faults go straight to the helpdesk."
            )
        return "Glad to help. Come back any time, and tell me how it goes with your class."
    return (
        "That one's outside what I can help with: I'm here for using technology in teaching and learning, "
        "and I pass technical faults to the helpdesk. Is there something in your teaching I can think through with you?"
    )


# When triage was torn between two routes, one line names the other and a button takes it.
_OFFERS: dict[tuple[Route, Route], tuple[str, Action]] = {
    (Route.COACH, Route.HELPDESK): ("If something is actually broken, tap \u201cIt's a tech problem\u201d and I'll "
                                    "raise a helpdesk ticket.", Action.TECH_PROBLEM),
    (Route.COACH, Route.INTEGRATOR): ("If you'd rather work this through with a person, tap \u201cTalk to a "
                                      "person\u201d.", Action.TALK_TO_PERSON),
    (Route.OTHER, Route.INTEGRATOR): ("If you'd like a person to pick this up, tap \u201cTalk to a person\u201d.",
                                      Action.TALK_TO_PERSON),
    (Route.OTHER, Route.HELPDESK): ("If something is broken, tap \u201cIt's a tech problem\u201d and I'll raise a "
                                    "helpdesk ticket.", Action.TECH_PROBLEM),
    (Route.OTHER, Route.COACH): ("If you meant a teaching question, tap \u201cCoach me on it instead\u201d.",
                                 Action.COACH_ME),
    (Route.HELPDESK, Route.COACH): ("If you meant a teaching question rather than a fault, tap \u201cCoach me on "
                                    "it instead\u201d.", Action.COACH_ME),
    (Route.HELPDESK, Route.INTEGRATOR): ("If you'd rather talk it through with a person, tap \u201cTalk to a "
                                         "person\u201d.", Action.TALK_TO_PERSON),
    (Route.INTEGRATOR, Route.COACH): ("If you'd like ideas now while you wait, tap \u201cCoach me on it "
                                      "instead\u201d.", Action.COACH_ME),
    (Route.INTEGRATOR, Route.HELPDESK): ("If something is broken, tap \u201cIt's a tech problem\u201d for a "
                                         "helpdesk ticket.", Action.TECH_PROBLEM),
}


def alternative_offer(decision: Decision) -> tuple[str, Action] | None:
    """The one line and button that make the other likely route a single tap away, if triage was unsure."""
    if decision.alternative is None:
        return None
    return _OFFERS.get((decision.route, decision.alternative))


def source_note(title: str, body: str, max_chars: int) -> str:
    """An entry's note as read from chat ("Read it"): the title, the note cut at a paragraph, one question."""
    note = body.strip()
    if len(note) > max_chars:
        cut = note[:max_chars]
        # End at a paragraph or sentence rather than mid-word.
        end = max(cut.rfind("\n\n"), cut.rfind(". "))
        note = (cut[:end + 1] if end > max_chars // 2 else cut).rstrip() + " …"
    return f"**{title}**\n\n{note}\n\nWhat in this fits your class, and what would you change?"


def empty_reply() -> str:
    return "It looks like that message was empty. What would you like to think through?"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- when a person picks up or closes a handoff -------------------------------------------

def handoff_claimed(ticket: str, target: str, category: str, who: str | None, settings: Settings) -> str:
    """Told to the teacher when an integrator or technician claims their escalation."""
    if target == "helpdesk":
        person = who or "a technician"
        return (f"Update on ticket {ticket}: {person} from the IT helpdesk has picked it up and will be in touch "
                f"{settings.handoff.helpdesk_response}.")
    team = settings.handoff.integrator_name
    person = f"{who} from {team}" if who else f"someone from {team}"
    if category == Category.SAFEGUARDING:
        sg = settings.safeguarding
        # The safeguarding lead acts on a concern, not the integrators' team.
        person = who or sg.contact_name
        return (f"{person[0].upper()}{person[1:]} has picked up the concern you raised (ref {ticket}) and will be in touch. "
                f"If you haven't yet, please follow {sg.procedure} and speak to {sg.contact_name} {sg.contact_detail} today.")
    return (f"Good news: {person} has picked up your request (ref {ticket}) and will be in touch "
            f"{settings.handoff.integrator_response}.")


def handoff_resolved(ticket: str, target: str, category: str, who: str | None, settings: Settings) -> str:
    """Told to the teacher when their escalation is marked resolved."""
    by = f" by {who}" if who else ""
    if target == "helpdesk":
        return (f"Ticket {ticket} has been marked fixed{by}. If it still isn't working, tell me here and "
                "I'll open a new ticket straight away.")
    if category == Category.SAFEGUARDING:
        sg = settings.safeguarding
        return (f"Ref {ticket} has been closed on our side{by}. {sg.contact_name[0].upper()}{sg.contact_name[1:]} "
                f"remains your contact ({sg.contact_detail}), and {sg.procedure} still applies.")
    return (f"Your request (ref {ticket}) has been marked resolved{by}. If there's still something you need, "
            "reply here and I'll pass it on.")
