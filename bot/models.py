"""Platform-neutral message models: what every adapter sends in and gets back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Route(str, Enum):
    """Where a message goes; the four routes of the replay contract."""

    COACH = "coach"
    HELPDESK = "helpdesk"
    INTEGRATOR = "integrator"
    OTHER = "other"


class Action(str, Enum):
    """Buttons offered under a reply, the same on every platform."""

    HELPED = "helped"
    NOT_QUITE = "not_quite"
    TALK_TO_PERSON = "talk_to_person"
    TECH_PROBLEM = "tech_problem"
    COACH_ME = "coach_me"
    # Coaching cycles: when to check in, and how it went (bot/checkins/).
    CHECKIN_AFTER_DAY = "checkin_after_day"
    CHECKIN_FEW_DAYS = "checkin_few_days"
    CHECKIN_NEXT_WEEK = "checkin_next_week"
    CHECKIN_NO = "checkin_no"
    CHECKIN_NEVER = "checkin_never"
    WENT_WELL = "went_well"
    WENT_MIXED = "went_mixed"
    NOT_YET = "not_yet"
    READ_SOURCE = "read_source"  # show a source's note in chat (an entry with no link to open)

    @property
    def is_feedback(self) -> bool:
        """A verdict on the reply (counted once, the buttons then give way); reading a source is not."""
        return self is not Action.READ_SOURCE


ACTION_LABELS: dict[Action, str] = {
    Action.HELPED: "This helped",
    Action.NOT_QUITE: "Not quite",
    Action.TALK_TO_PERSON: "Talk to a person",
    Action.TECH_PROBLEM: "It's a tech problem",
    Action.COACH_ME: "Coach me on it instead",
    Action.READ_SOURCE: "Read it",
    Action.CHECKIN_AFTER_DAY: "After that day",
    Action.CHECKIN_FEW_DAYS: "In a few days",
    Action.CHECKIN_NEXT_WEEK: "Next week",
    Action.CHECKIN_NO: "No thanks",
    Action.CHECKIN_NEVER: "Don't offer again",
    Action.WENT_WELL: "Went well",
    Action.WENT_MIXED: "Mixed",
    Action.NOT_YET: "Didn't get to it",
}


class PlatformRef(BaseModel):
    """Platform leftovers an adapter needs to answer later; the core never reads them."""

    model_config = ConfigDict(frozen=True)

    channel: str | None = None
    message_ts: str | None = None
    service_url: str | None = None
    reference: dict[str, Any] | None = None


class InboundMessage(BaseModel):
    """One teacher message, as every adapter hands it to `Coach.handle`."""

    model_config = ConfigDict(frozen=True)

    platform: str = Field(description="slack, teams, console, replay, ...")
    conversation_id: str
    thread_id: str | None = None
    user_id: str
    user_name: str | None = None
    text: str
    is_direct: bool = True
    message_id: str | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    platform_ref: PlatformRef = Field(default_factory=PlatformRef)

    @property
    def memory_key(self) -> str:
        """The key under which this conversation's history is kept (a thread is its own conversation)."""
        base = f"{self.platform}:{self.conversation_id}"
        return f"{base}:{self.thread_id}" if self.thread_id else base


class Source(BaseModel):
    """A knowledge entry a reply drew on."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    url: str | None = None
    score: float = 0.0

    @property
    def readable_in_chat(self) -> bool:
        """No link to open: the adapter offers Action.READ_SOURCE, which shows the entry's note."""
        return self.url is None


class Handoff(BaseModel):
    """An escalation that this turn opened or added to."""

    model_config = ConfigDict(frozen=True)

    target: str  # "helpdesk" or "integrator"
    reason: str
    ticket: str
    urgent: bool = False
    created: bool = True  # False when the turn added to an escalation already open


class Followup(BaseModel):
    """A check-in the reply offers (replay's optional `followup` field)."""

    model_config = ConfigDict(frozen=True)

    offered: bool = True
    when: str | None = None  # the time phrase the teacher used: "thursday", "next week", ...


class Reply(BaseModel):
    """What the core answers; adapters draw it natively (Block Kit, Adaptive Card, text)."""

    model_config = ConfigDict(frozen=True)

    text: str
    route: Route
    sources: list[Source] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    handoff: Handoff | None = None
    turn_id: str | None = None
    composer: str = "template"
    notices: list[str] = Field(default_factory=list)
    followup: Followup | None = None

    def source_ids(self) -> list[str]:
        """Ids of the entries drawn on, best first."""
        return [s.id for s in self.sources]


class ActionEvent(BaseModel):
    """A button click on an earlier reply, as adapters hand it to `Coach.handle_action`."""

    model_config = ConfigDict(frozen=True)

    platform: str
    conversation_id: str
    thread_id: str | None = None
    user_id: str
    turn_id: str
    action: Action
    source_id: str | None = None  # which source, for Action.READ_SOURCE
    platform_ref: PlatformRef = Field(default_factory=PlatformRef)
    user_tz: str | None = None  # the clicker's IANA time zone when the platform says (Slack users.info)

    @property
    def memory_key(self) -> str:
        """Same key as the message the clicked reply answered."""
        base = f"{self.platform}:{self.conversation_id}"
        return f"{base}:{self.thread_id}" if self.thread_id else base


@dataclass(frozen=True)
class PastTurn:
    """What memory gives back of an earlier turn."""

    id: str
    text: str
    route: str
    reply: str
    sources: list[str]
    confidence: float
    created_at: datetime
