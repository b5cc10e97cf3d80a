"""What a handoff delivery is: its statuses and events, and the protocols the channels implement.

The outbox (bot/handoff/outbox.py) stores and drains the rows; the channels that speak SMTP, HTTP,
Slack and Teams (adapters/delivery/) receive an `OutboxItem` and raise `DeliveryError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class DeliveryStatus(StrEnum):
    """Where one delivery row is in its life (the diagram in bot/handoff/outbox.py)."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


class HandoffEvent(StrEnum):
    """What happened to an escalation that a delivery tells someone about."""

    OPENED = "opened"
    UPDATED = "updated"  # a later turn added a detail
    CLAIMED = "claimed"
    RESOLVED = "resolved"


# Short names, as the outbox, its listener and `coach handoffs` read them.
PENDING, SENDING, DELIVERED, FAILED = tuple(DeliveryStatus)
STATUSES = tuple(DeliveryStatus)
OPENED, UPDATED, CLAIMED, RESOLVED = tuple(HandoffEvent)

TEACHER_PREFIX = "teacher:"
# Delivery targets beyond the escalation targets (helpdesk, integrator): the safeguarding lead and deputy.
SAFEGUARDING_LEAD = "safeguarding"
SAFEGUARDING_DEPUTY = "safeguarding_deputy"


# -- what channels see -------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutboxItem:
    """A claimed row, as a channel receives it."""

    id: int
    key: str
    escalation_id: int
    ticket: str
    event: str
    seq: int
    channel: str
    payload: dict[str, Any]
    attempt: int
    created_at: datetime
    # The same channel's `opened` delivery of this escalation (key, status, receipt), for threading updates.
    first: dict[str, Any] | None = None


class DeliveryError(Exception):
    """A delivery that did not happen; `permanent` stops retries until an operator looks."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class DeliveryChannel(Protocol):
    """A place handoffs go: the integrators' Slack channel, a Teams channel, e-mail, a webhook."""

    name: str
    targets: frozenset[str]  # escalation targets it takes: "helpdesk", "integrator"
    events: frozenset[str]  # the `HandoffEvent`s it takes

    def deliver(self, item: OutboxItem) -> dict[str, Any] | None:
        """Send one item; return a receipt to keep (or None); raise DeliveryError on failure."""
        ...

    def probe(self) -> str:
        """Check the target is reachable without sending a handoff; return a short description, or raise."""
        ...


@dataclass(frozen=True)
class TeacherNotice:
    """A message for the teacher who started an escalation (claimed, resolved)."""

    platform: str
    conversation_id: str
    thread_id: str | None
    user_id: str
    text: str
    ticket: str
    kind: str
    platform_ref: dict[str, Any] = field(default_factory=dict)
    memory_key: str = ""  # the conversation's key; Teams stores its conversation reference under it

    def as_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "conversation_id": self.conversation_id, "thread_id": self.thread_id,
                "user_id": self.user_id, "text": self.text, "ticket": self.ticket, "kind": self.kind,
                "platform_ref": self.platform_ref, "memory_key": self.memory_key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherNotice:
        return cls(platform=data["platform"], conversation_id=data["conversation_id"], thread_id=data.get("thread_id"),
                   user_id=data.get("user_id", ""), text=data["text"], ticket=data.get("ticket", ""),
                   kind=data.get("kind", ""), platform_ref=dict(data.get("platform_ref") or {}),
                   memory_key=data.get("memory_key", ""))


class TeacherNotifier(Protocol):
    """Tells a teacher something on their own platform, in the conversation the escalation came from."""

    platform: str

    def notify_teacher(self, notice: TeacherNotice) -> dict[str, Any] | None:
        """Post the notice; return a receipt or None; raise DeliveryError on failure."""
        ...


class TeacherChannel:
    """A TeacherNotifier seen as a delivery channel, so teacher notices go through the outbox too."""

    events: frozenset[str] = frozenset({CLAIMED, RESOLVED})
    targets = frozenset({"helpdesk", "integrator"})

    def __init__(self, notifier: TeacherNotifier) -> None:
        self.notifier = notifier
        self.name = TEACHER_PREFIX + notifier.platform

    def deliver(self, item: OutboxItem) -> dict[str, Any] | None:
        return self.notifier.notify_teacher(TeacherNotice.from_dict(item.payload["notice"]))

    def probe(self) -> str:
        probe = getattr(self.notifier, "probe", None)
        return probe() if probe else "no probe"
