"""The context a person can act on when the coach hands a conversation over.

An integrator gets a short summary, the teacher's goal in their own words, grade, subject and
tool when the teacher mentioned them, what the coach already asked and offered, and why it
handed off. The helpdesk gets the fault, the device, the room, what is on the screen and how
urgent it is. Both get the transcript. When `settings.handoff.mask_transcripts` is on, every
piece of teacher-written text is masked with one mapping (bot.privacy.masker.Masker), so `[NAME-1]`
is the same child in the subject line, the fields and the transcript: a ticket system or a
chat channel is not the place for student names, e-mail addresses or phone numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.handoff.escalations import EscalationRow, EscalationStatus
from bot.state.database import aware
from bot.privacy.masker import Masked, Masker, shared_masker
# The same patterns that decide what the coach asks a teacher for decide what the technician is shown.
from bot.compose.replies import _DEVICE, _ROOM
from bot.settings import Settings
from bot.models import PastTurn

EVENTS = ("opened", "updated", "claimed", "resolved")

_GRADE = re.compile(r"\b(?:year|yr|grade|gr|class)\.?\s*(\d{1,2})s?\b|\b(kindergarten|reception|pre-?k|nursery|preschool)\b", re.I)
_SUBJECTS = (
    "maths", "math", "mathematics", "english", "literacy", "numeracy", "reading", "writing", "phonics", "science",
    "biology", "chemistry", "physics", "history", "geography", "social studies", "art", "music", "drama", "dance",
    "pe", "physical education", "french", "spanish", "german", "mandarin", "languages", "computing",
    "computer science", "ict", "design technology", "religious education", "re", "economics", "business",
    "media studies", "health", "pshe", "stem", "steam",
)
_SUBJECT = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _SUBJECTS), key=len, reverse=True)) + r")\b", re.I)
_TOOLS = (
    "padlet", "google forms", "google docs", "google slides", "google sheets", "google classroom", "google drive",
    "jamboard", "seesaw", "canvas", "kahoot", "quizizz", "blooket", "flip", "flipgrid", "mentimeter", "book creator",
    "scratch", "scratchjr", "minecraft", "minecraft education", "canva", "chatgpt", "copilot", "gemini",
    "microsoft teams", "onenote", "class notebook", "sway", "powerpoint", "microsoft forms", "word", "excel",
    "keynote", "imovie", "clips", "garageband", "audacity", "soundtrap", "nearpod", "edpuzzle", "miro",
    "whiteboard.fi", "classdojo", "khan academy", "tinkercad", "micro:bit", "microbit", "sphero", "bee-bot",
    "beebot", "desmos", "geogebra", "padlet wall", "wakelet", "loom", "screencastify", "youtube", "podcast",
    "stop motion", "green screen", "ai",
)
_TOOL = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, _TOOLS), key=len, reverse=True)) + r")(?![\w-])", re.I)
_GOAL = re.compile(
    r"\b(i want|i'd like|i would like|i'm trying|i am trying|trying to|hoping to|i hope|my goal|the goal|so that|"
    r"i need (?:my|them|the|students|a way)|want (?:my|them|the|students|kids)|get (?:my|the) (?:students|kids|class)|"
    r"help (?:my|them|the) (?:students|kids|class)|how (?:can|could|do|should) (?:i|we|my))\b", re.I)
_SCREEN_AFTER = re.compile(
    r"\b(?:says|said|shows|showing|displays|displaying|error(?: message| code)?|message|light is|lights are|is blinking|"
    r"is flashing|stuck on)\b[:\s]*([^.;!?\n]{2,80})", re.I)
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,120})[\"“”]|(?<!\w)'([^'\n]{2,120})'(?!\w)")  # not the ' of "it's"
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_LEADING = re.compile(r"^(?:(?:hi|hello|hey|help|please|urgent|sorry|ok|so|um)\b[\s,!:;-]*)+", re.I)
_ARTICLE = re.compile(r"^(?:the|my|our|a|an)\s+", re.I)

INTEGRATOR_TITLES = {
    "safeguarding": "Possible safeguarding concern: needs a person today",
    "data_incident": "Possible student-data incident",
    "human_request": "Teacher asked for a person",
    "frustration": "Coaching was not helping",
    "complex": "Co-planning request",
}
# Sensitive categories never put the teacher's words in a subject or channel header.
_NO_WORDS_IN_TITLE = frozenset({"safeguarding", "data_incident"})


@dataclass(frozen=True)
class HandoffContext:
    """Everything a person needs to act on one escalation event, already masked when configured."""

    escalation_id: int
    ticket: str
    target: str
    event: str
    category: str
    title: str
    summary: str
    why: str
    urgency: str
    status: str
    teacher: str
    conversation: str
    created_at: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)
    new_detail: str | None = None
    status_line: str | None = None
    masked: bool = True
    # A safeguarding concern as the shared channels see it: one line, no detail, no buttons.
    notice_only: bool = False

    @property
    def urgent(self) -> bool:
        return self.urgency == "urgent"

    def subject(self) -> str:
        """What a helpdesk threads on: `[Coach H-0042] Projector in room 12 shows no signal`."""
        urgent = "URGENT: " if self.urgent else ""
        return f"[Coach {self.ticket}] {urgent}{self.title}"

    def as_text(self) -> str:
        """Plain text for an e-mail body or the terminal."""
        lines: list[str] = []
        if self.status_line:
            lines += [self.status_line, ""]
        if self.event == "updated" and self.new_detail:
            lines += [f"The teacher added: {self.new_detail}", ""]
        lines += [f"{self.ticket}: {self.title}", self.summary, ""]
        width = max((len(k) for k, _ in self.fields), default=0)
        for key, value in self.fields:
            lines.append(f"{key + ':':<{width + 1}} {value}")
        lines += [""] + [f"{label}: {value}" for label, value in (
            ("Why handed off", self.why), ("Teacher", self.teacher), ("Conversation", self.conversation),
            ("Opened", self.created_at)) if value] + [""]
        if self.transcript:
            lines.append("Transcript" + (" (names, e-mails, phones, addresses, student numbers and classes masked)" if self.masked else "") + ":")
            for speaker, text in self.transcript:
                lines.append(f"  {speaker}: {text}")
        return "\n".join(lines).rstrip() + "\n"

    def channel_text(self) -> str:
        """A short Markdown message for the integrators' channel (Slack's adapter translates it; Teams reads it)."""
        head = f"{'URGENT ' if self.urgent else ''}**{self.ticket}** {self.title}"
        lines = [head, self.summary]
        lines += [f"**{k}:** {v}" for k, v in self.fields]
        if self.status_line:
            lines.append(self.status_line)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The webhook payload's `context` object."""
        return {
            "escalation_id": self.escalation_id, "ticket": self.ticket, "target": self.target, "event": self.event,
            "category": self.category, "title": self.title, "subject": self.subject(), "summary": self.summary,
            "why": self.why, "urgency": self.urgency, "status": self.status, "teacher": self.teacher,
            "conversation": self.conversation, "created_at": self.created_at,
            "fields": {k: v for k, v in self.fields},
            "transcript": [{"speaker": s, "text": t} for s, t in self.transcript],
            "new_detail": self.new_detail, "status_line": self.status_line, "masked": self.masked,
            "notice_only": self.notice_only,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HandoffContext:
        """Back from an outbox row's payload, so a delivery after a restart sends what was recorded."""
        return cls(
            escalation_id=int(data["escalation_id"]), ticket=data["ticket"], target=data["target"],
            event=data["event"], category=data.get("category", ""), title=data["title"], summary=data["summary"],
            why=data.get("why", ""), urgency=data.get("urgency", "normal"), status=data.get("status", "open"),
            teacher=data.get("teacher", ""), conversation=data.get("conversation", ""),
            created_at=data.get("created_at", ""), fields=list((data.get("fields") or {}).items()),
            transcript=[(t["speaker"], t["text"]) for t in data.get("transcript") or []],
            new_detail=data.get("new_detail"), status_line=data.get("status_line"), masked=bool(data.get("masked", True)),
            notice_only=bool(data.get("notice_only", False)),
        )


def build_context(row: EscalationRow, history: Sequence[PastTurn], settings: Settings, *, event: str = "opened",
                  new_detail: str | None = None, masker: Masker | None = None) -> HandoffContext:
    """Build the context for one escalation event from its record and the conversation so far."""
    if event not in EVENTS:
        raise ValueError(f"build_context(): unknown event {event!r}; expected one of {EVENTS}")
    details = [str(d.get("text", "")) for d in (row.details or []) if isinstance(d, dict) and d.get("text")]
    teacher_texts = [t.text for t in history] + [d for d in details if d not in {t.text for t in history}]
    transcript: list[tuple[str, str]] = []
    for turn in history:
        transcript.append(("Teacher", turn.text))
        transcript.append(("Coach", turn.reply))
    seen = {t.text for t in history}
    transcript += [("Teacher", d) for d in details if d not in seen]

    if row.target == "helpdesk":
        ticket_texts = details or teacher_texts[-1:]
        title = _title(ticket_texts[0] if ticket_texts else row.summary)
        fields = _helpdesk_fields(ticket_texts, row.urgent)
        kind = "Account or access problem" if row.category == "account" else "Technical fault"
        summary = f"{kind} reported by a teacher" + (", class waiting now." if row.urgent else ".")
    else:
        goal = _goal(history, details)
        label = INTEGRATOR_TITLES.get(row.category, "Handoff to an integrator")
        title = label if row.category in _NO_WORDS_IN_TITLE or not goal else f"{label}: {shorten(goal, 60)}"
        fields = _integrator_fields(history, details, goal)
        coach_turns = sum(1 for t in history if t.route == "coach")
        summary = (f"{row.reason[:1].upper()}{row.reason[1:]}"
                   f"{'; urgent' if row.urgent else ''}. {coach_turns} coaching turn(s) before the handoff.")

    status_line = None
    if row.status == EscalationStatus.CLAIMED:
        status_line = f"Claimed by {row.claimer} at {_when(row.claimed_at)}"
    elif row.status == EscalationStatus.RESOLVED:
        status_line = f"Resolved by {row.resolver or 'someone'} at {_when(row.resolved_at)}"
        if row.resolution_note:  # masked when it was recorded
            status_line += f". Note: {shorten(row.resolution_note, 500)}"

    masked = settings.handoff.mask_transcripts
    if masked:
        # One masking pass over every teacher-written piece keeps placeholders consistent everywhere.
        texts = [title, new_detail or ""] + [v for _, v in fields] + [t for _, t in transcript]
        # Placeholders derive from the escalation's id, so they are the same in every event of one ticket.
        out, _ = (masker or shared_masker(settings)).mask_many(texts, into=Masked("", seed=str(row.id)))
        title, new_detail_m = out[0], out[1] or None
        fields = [(k, v) for (k, _), v in zip(fields, out[2:2 + len(fields)])]
        transcript = [(s, t) for (s, _), t in zip(transcript, out[2 + len(fields):])]
        new_detail = new_detail_m if new_detail else None

    return HandoffContext(
        escalation_id=row.id, ticket=row.ticket, target=row.target, event=event, category=row.category,
        title=title, summary=summary, why=row.reason, urgency=row.urgency, status=row.status,
        teacher=_teacher(row), conversation=row.memory_key,
        created_at=_when(row.created_at), fields=fields, transcript=transcript, new_detail=new_detail,
        status_line=status_line, masked=masked,
    )


def concern_notice(row: EscalationRow, settings: Settings, *, event: str, passed_on: bool) -> HandoffContext:
    """What a shared channel (integrators, helpdesk, webhook) is told of a safeguarding concern: that it exists.

    No words of the teacher's, no teacher, no conversation: only the safeguarding lead gets those.
    `passed_on` says whether a safeguarding-lead target was configured to receive the account.
    """
    if passed_on:
        title = "Safeguarding concern passed to the safeguarding lead"
        summary = f"A safeguarding concern was passed to the safeguarding lead ({row.ticket})."
    else:
        title = "Safeguarding concern: not passed on automatically"
        summary = (f"A safeguarding concern was raised ({row.ticket}). No safeguarding-lead target is configured, "
                   f"so nobody was sent it; the teacher was asked to go to {settings.safeguarding.contact_name} "
                   "in person now.")
    status_line = None
    if row.status == EscalationStatus.CLAIMED:
        status_line = f"Claimed by {row.claimer} at {_when(row.claimed_at)}"
    elif row.status == EscalationStatus.RESOLVED:
        status_line = f"Resolved by {row.resolver or 'someone'} at {_when(row.resolved_at)}"
    return HandoffContext(
        escalation_id=row.id, ticket=row.ticket, target=row.target, event=event, category=row.category,
        title=title, summary=summary, why="", urgency=row.urgency, status=row.status, teacher="", conversation="",
        created_at=_when(row.created_at), status_line=status_line, masked=True, notice_only=True)


# -- extraction ------------------------------------------------------------------------------------

def _helpdesk_fields(texts: Sequence[str], urgent: bool) -> list[tuple[str, str]]:
    joined = "\n".join(texts)
    fields = [("Fault", shorten(_first_sentence(texts[0]), 160) if texts else "not said")]
    fields.append(("Device", _unique(m.group(0) for m in _DEVICE.finditer(joined)) or "not said yet"))
    fields.append(("Room", _rooms(joined) or "not said yet"))
    fields.append(("On screen", _screen(joined) or "not said yet"))
    fields.append(("Urgency", "URGENT: a class is waiting now" if urgent else "normal"))
    return fields


def _integrator_fields(history: Sequence[PastTurn], details: Sequence[str], goal: str | None) -> list[tuple[str, str]]:
    texts = [t.text for t in history] + list(details)
    joined = "\n".join(texts)
    fields: list[tuple[str, str]] = [("Teacher's goal", f"\u201c{goal}\u201d" if goal else "not said yet")]
    grade = _unique(m.group(0) for m in _GRADE.finditer(joined))
    subject = _unique(m.group(0) for m in _SUBJECT.finditer(joined))
    tool = _unique(m.group(0) for m in _TOOL.finditer(joined))
    for key, value in (("Grade", grade), ("Subject", subject), ("Tool", tool)):
        if value:
            fields.append((key, value))
    asked = [q for t in history if t.route == "coach" for q in _questions(t.reply)]
    offered = _unique(s for t in history if t.route == "coach" for s in t.sources)
    fields.append(("Coach already asked", " / ".join(asked[-3:]) if asked else "nothing yet"))
    fields.append(("Coach already offered", offered or "nothing yet"))
    return fields


def _goal(history: Sequence[PastTurn], details: Sequence[str]) -> str | None:
    # Prefer what the teacher said while being coached; then anything they said in the handoff turn.
    coached = [t.text for t in history if t.route == "coach"]
    for text in [*coached, *details, *(t.text for t in history)]:
        for sentence in _SENTENCE.split(text):
            if _GOAL.search(sentence):
                return shorten(sentence.strip(), 300)
    return shorten(coached[0].strip(), 300) if coached else None


_GENERIC_PLACES = frozenset({"room", "rm", "classroom", "office", "block", "wing", "building"})


def _rooms(text: str) -> str:
    # "room 12", "lab B", "library": a place word plus its number or name; a bare "my classroom" says nothing.
    found = []
    for m in _ROOM.finditer(text):
        place, rest = m.group(1), m.group(0)[len(m.group(1)):].split()
        if rest and (any(c.isdigit() for c in rest[0]) or (len(rest[0]) <= 3 and rest[0][:1].isupper())):
            found.append(f"{place} {rest[0]}".rstrip(",.;"))
        elif place.lower() not in _GENERIC_PLACES:
            found.append(place)
    return _unique(found)


def _questions(reply: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", reply or "") if s.strip().endswith("?")][:2]


def _screen(text: str) -> str | None:
    quoted = _QUOTED.search(text)
    if quoted:
        return f"\u201c{(quoted.group(1) or quoted.group(2)).strip()}\u201d"
    after = _SCREEN_AFTER.search(text)
    if after:
        # "shows no signal" → "no signal"; "error code 0x44", "light is blinking orange" keep their first words.
        verb = after.group(0)[:len(after.group(0)) - len(after.group(1))].strip(" :").lower()
        shown = after.group(1) if verb.split()[0] in ("says", "said", "shows", "showing", "displays",
                                                       "displaying", "stuck") else after.group(0)
        return shorten(shown.strip(), 100)
    if re.search(r"\bno signal\b", text, re.I):
        return "no signal"
    return None


def _title(text: str) -> str:
    first = _first_sentence(text)
    first = _LEADING.sub("", first).strip()
    first = _ARTICLE.sub("", first)
    first = first.rstrip(" ,;:-")
    if not first:
        return "Technical problem"
    return shorten(first[0].upper() + first[1:], 70)


def _first_sentence(text: str) -> str:
    parts = [p for p in _SENTENCE.split((text or "").strip()) if p.strip()]
    return (parts[0] if parts else "").strip().rstrip(".!")


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut at a word boundary with an ellipsis when longer than `limit`."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "\u2026"


def _unique(values: Any) -> str:
    seen: dict[str, str] = {}
    for value in values:
        value = " ".join(str(value).split())
        if value and value.lower() not in seen:
            seen[value.lower()] = value
    return ", ".join(seen.values())


def _teacher(row: EscalationRow) -> str:
    # A member of staff, so not masked: the helpdesk has to know whom to call back.
    name = (row.reply_to or {}).get("user_name")
    return f"{name} ({row.platform} user {row.user_id})" if name else f"{row.platform} user {row.user_id}"


def _when(value: datetime | None) -> str:
    value = aware(value)
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
