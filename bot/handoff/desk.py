"""The handoff desk's side of the coach: what an escalation listener is told, and claim or resolve.

`Coach` hands an `EscalationEvent` to its listener (the outbox) when a turn opens or adds to an
escalation; `escalation_action` is the one path a claim or resolve takes, from a button or the
command line, and hands the listener an `EscalationStatusEvent`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.access import Actor, ActionResult, Outcome, policy_from
from bot.compose import replies
from bot.handoff.context import build_context
from bot.handoff.escalations import ACTIVE, EscalationRow, Escalations, EscalationStatus, Opened, Transition
from bot.models import PastTurn
from bot.outbound import outbound
from bot.privacy.masked import Masked
from bot.privacy.masker import shared_masker
from bot.settings import Settings
from bot.state.memory import ConversationMemory
from bot.triage.router import Decision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EscalationEvent:
    """What the handoff side needs to tell a person: the record and the turn that opened or added to it."""

    opened: Opened
    message_text: str
    decision: Decision
    history: Sequence[PastTurn]
    platform: str
    memory_key: str


class EscalationListener(Protocol):
    """Delivery side of a handoff (the outbox); replay passes none, so nothing is sent."""

    def escalated(self, event: EscalationEvent) -> None: ...


# -- handoff desk: a person claims or resolves; the listener tells the teacher -----------

@dataclass(frozen=True)
class EscalationStatusEvent:
    """A claim or resolve that changed an escalation, with what the teacher should now be told."""

    transition: Transition
    teacher_text: str
    history: Sequence[PastTurn]


class EscalationStatusListener(Protocol):
    """Optional second half of a listener (the outbox has it): records the teacher's notification."""

    def status_changed(self, event: EscalationStatusEvent) -> None: ...


HANDOFF_ACTIONS = {"claim": "claim", "handoff_claim": "claim", "resolve": "resolve", "handoff_resolve": "resolve"}
# A resolution note is an answer of a few paragraphs; anything longer is cut (it becomes a draft's body).
MAX_NOTE_CHARS = 4000


def _kind(action: str, actor: Actor) -> str:
    kind = HANDOFF_ACTIONS.get(action)
    if kind is None:
        raise ValueError(f"Coach.escalation_action(): unknown action {action!r}; use claim or resolve.")
    if not isinstance(actor, Actor):
        raise TypeError("Coach.escalation_action(): actor must be an Actor (platform and user id), "
                        f"not {type(actor).__name__}.")
    return kind


def _missing(escalation_id: int) -> ActionResult:
    return ActionResult(Outcome.UNCHANGED, message=f"There is no handoff {escalation_id}.")


def _refused(settings: Settings, current: EscalationRow, kind: str, actor: Actor) -> ActionResult | None:
    """Why `actor` may not act on it (a role that may not); None when they may."""
    policy = policy_from(settings)
    if not policy.may_act(actor, current.target, current.category or ""):
        log.warning("%s of %s refused for %s (not a role that may act on it)", kind, current.ticket, actor.key)
        return ActionResult(Outcome.REFUSED, message=policy.refusal(actor, current.target, current.category or ""))
    return None


def _permitted(settings: Settings, escalations: Escalations, escalation_id: int, kind: str,
               actor: Actor) -> tuple[EscalationRow | None, ActionResult | None]:
    """The escalation and None when `actor` may act on it; else None and why not (missing or refused)."""
    current = escalations.get(escalation_id)
    if current is None:
        return None, _missing(escalation_id)
    return current, _refused(settings, current, kind, actor)


def escalation_check(settings: Settings, escalations: Escalations, escalation_id: int, action: str,
                     actor: Actor) -> ActionResult | None:
    """Whether `actor` may claim or resolve this escalation now: None when they may, else why not.

    Asked before a platform collects more from the person (the note a Slack modal asks for), so
    someone who may not act is told at once; `escalation_action` checks again when it acts.
    """
    kind = _kind(action, actor)
    current, refused = _permitted(settings, escalations, escalation_id, kind, actor)
    if refused is not None:
        return refused
    assert current is not None  # a row is returned whenever nothing is refused
    allowed = (EscalationStatus.OPEN,) if kind == "claim" else ACTIVE
    if current.status not in allowed:
        return ActionResult(Outcome.UNCHANGED, message=f"{current.ticket} is already {current.status}; nothing changed.")
    return None


def masked_note(settings: Settings, escalation_id: int, note: str | None) -> str | None:
    """The resolver's note as it may be stored and shared: masked by the one masker, trimmed; None when empty.

    Placeholders derive from the escalation's id, as in its handoff context, so a student masked
    in the transcript is the same placeholder in the note.
    """
    text = (note or "").strip()
    if not text:
        return None
    masked = shared_masker(settings).mask(text[:MAX_NOTE_CHARS], into=Masked("", seed=str(escalation_id)))
    return masked.text.strip() or None


def escalation_action(settings: Settings, escalations: Escalations, memory: ConversationMemory,
                      listener: object | None, escalation_id: int, action: str, actor: Actor,
                      note: str | None = None) -> ActionResult:
    """`Coach.escalation_action` without a retriever, for the command line (works while the store is down).

    `note` (resolve only) is what the resolver answered; it is masked before it is stored.
    """
    kind = _kind(action, actor)
    if note is not None and note.strip() and kind != "resolve":
        raise ValueError("Coach.escalation_action(): a note is recorded only when resolving.")
    current, refused = _permitted(settings, escalations, escalation_id, kind, actor)
    if refused is not None:
        return refused
    assert current is not None  # a row is returned whenever nothing is refused
    if kind == "claim":
        change = escalations.claim(escalation_id, actor.key, actor.name)
    else:  # masked only once the resolver is known to be allowed: a refused note is never processed
        change = escalations.resolve(escalation_id, actor.key, actor.name,
                                     note=masked_note(settings, escalation_id, note))
    if change is None:
        return ActionResult(Outcome.UNCHANGED, message=f"{current.ticket} is already {current.status}; nothing changed.")
    row = change.row
    notice = replies.handoff_claimed if kind == "claim" else replies.handoff_resolved
    teacher_text = notice(row.ticket, row.target, row.category, actor.name, settings)
    history = memory.history(row.memory_key)
    status_changed = getattr(listener, "status_changed", None)
    if status_changed is not None:
        try:
            status_changed(EscalationStatusEvent(change, teacher_text, history))
        except Exception:  # the rows were written with the status change; this only wakes delivery
            log.exception("%s %s recorded; recording the notifications failed", row.ticket, kind)
    text = outbound(build_context(row, history, settings, event="claimed" if kind == "claim" else "resolved").channel_text())
    return ActionResult(Outcome.CHANGED, channel_text=text,
                        message=f"{row.ticket} {'claimed' if kind == 'claim' else 'resolved'}.")
