"""The coach's escalation listener: which channels hear of an escalation event, and what each is sent.

It writes the delivery rows (in the escalation's own transaction, or at once after it), builds the
context each channel gets (a safeguarding concern's full account to the lead alone), tells the teacher
when someone claims or resolves, sends unclaimed concerns on to the deputy, and writes any rows a
recovery sweep finds missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.compose import replies
from bot.handoff.context import build_context, concern_notice
from bot.handoff.delivery import (CLAIMED, OPENED, RESOLVED, SAFEGUARDING_DEPUTY, SAFEGUARDING_LEAD, TEACHER_PREFIX,
                                  UPDATED, TeacherNotice)
from bot.handoff.escalations import EscalationRow, Escalations, EscalationStatus
from bot.handoff.outbox import Outbox, OutboxRow
from bot.platforms import Capability, platforms
from bot.settings import Settings
from bot.state.database import utcnow
from bot.state.memory import ConversationMemory
from bot.triage.categories import Category

if TYPE_CHECKING:  # the coach imports nothing from here; the listener only reads its event types
    from bot.handoff.desk import EscalationEvent, EscalationStatusEvent

log = logging.getLogger(__name__)

SAFEGUARDING_CATEGORY = Category.SAFEGUARDING


class OutboxListener:
    """The coach's EscalationListener: writes outbox rows (the record is in the database first), then wakes the worker."""

    def __init__(self, outbox: Outbox, escalations: Escalations, memory: ConversationMemory, settings: Settings,
                 *, wake: Callable[[], None] | None = None) -> None:
        self.outbox = outbox
        self.escalations = escalations
        self.memory = memory
        self.settings = settings
        self.wake = wake or (lambda: None)

    def route(self, target: str, event: str) -> list[str]:
        """Channels that take this escalation target and event; helpdesk tickets with nowhere to go reach the integrators."""
        chans = [c for c in self.outbox.channels.values() if not c.name.startswith(TEACHER_PREFIX) and event in c.events]
        names = [c.name for c in chans if target in c.targets]
        if not names and target == "helpdesk":
            names = [c.name for c in chans if "integrator" in c.targets]
        return names

    def safeguarding_channels(self) -> list[str]:
        """The channels that reach the safeguarding lead (empty: nobody can be told automatically)."""
        return self.route(SAFEGUARDING_LEAD, OPENED)

    def reaches(self, target: str) -> list[str]:
        """Channels an escalation with this target (or `safeguarding`) is delivered to when opened."""
        return self.safeguarding_channels() if target == SAFEGUARDING_LEAD else self.route(target, OPENED)

    def channels_for(self, row: EscalationRow, event: str) -> list[str]:
        """Every channel (teacher notices aside) that takes this event of this escalation.

        A safeguarding concern goes to the lead's channels; the shared ones hear only that it
        exists (never its updates).
        """
        shared = self.route(row.target, event)
        if row.category != SAFEGUARDING_CATEGORY:
            return shared
        return self.route(SAFEGUARDING_LEAD, event) + ([] if event == UPDATED else shared)

    def write(self, session: Session, row: EscalationRow, event: str, seq: int) -> None:
        """The Escalations writer: delivery rows for this change, in the transaction that made it."""
        self.outbox.add_rows(session, row, event, seq, self.deliveries(row, event, seq))

    def deliveries(self, row: EscalationRow, event: str, seq: int,
                   history: Sequence[Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(channel, payload) for every channel that takes this event, and the teacher's notice for a claim or resolve.

        A safeguarding concern's full, unmasked account goes to the safeguarding lead's channels
        alone (they need it to act); every shared channel (integrators, helpdesk, webhook) gets a
        one-line notice that the concern exists and where it went.
        """
        notice = self._teacher_notice(row, event)
        shared = self.route(row.target, event)
        lead = self.route(SAFEGUARDING_LEAD, event) if row.category == SAFEGUARDING_CATEGORY else []
        if not shared and not lead and notice is None:
            return []
        if history is None:
            history = self.memory.history(row.memory_key)
        detail = None
        if event == UPDATED and 0 < seq <= len(row.details or []):
            detail = (row.details[seq - 1] or {}).get("text")
        out: list[tuple[str, dict[str, Any]]] = []
        if row.category != SAFEGUARDING_CATEGORY:
            context = build_context(row, history, self.settings, event=event, new_detail=detail)
            out += [(c, {"context": context.as_dict()}) for c in shared]
        else:
            if lead:
                unmasked = self.settings.model_copy(update={"handoff": self.settings.handoff.model_copy(
                    update={"mask_transcripts": False})})
                full = build_context(row, history, unmasked, event=event, new_detail=detail)
                out += [(c, {"context": full.as_dict()}) for c in lead]
            if event != UPDATED:
                brief = concern_notice(row, self.settings, event=event, passed_on=bool(self.safeguarding_channels()))
                out += [(c, {"context": brief.as_dict()}) for c in shared]
        if notice is not None:
            out.append(notice)
        return out

    def _tells_teacher(self, row: EscalationRow) -> bool:
        """A chat platform's bot process (or this process's notifier) can tell the teacher later."""
        return (TEACHER_PREFIX + row.platform in self.outbox.channels
                or platforms.can(row.platform, Capability.TELL_LATER))

    def _teacher_notice(self, row: EscalationRow, event: str) -> tuple[str, dict[str, Any]] | None:
        if event not in (CLAIMED, RESOLVED):
            return None
        channel = TEACHER_PREFIX + row.platform
        if not self._tells_teacher(row):
            log.info("%s %s: no notifier for %s teachers; the teacher is not told", row.ticket, event, row.platform)
            return None
        if event == CLAIMED:
            text = replies.handoff_claimed(row.ticket, row.target, row.category, row.claimed_by_name, self.settings)
        else:
            text = replies.handoff_resolved(row.ticket, row.target, row.category, row.resolved_by_name, self.settings)
        reply_to = row.reply_to or {}
        notice = TeacherNotice(
            platform=row.platform, conversation_id=str(reply_to.get("conversation_id") or ""),
            thread_id=reply_to.get("thread_id"), user_id=row.user_id, text=text, ticket=row.ticket, kind=event,
            platform_ref=dict(reply_to.get("platform_ref") or {}), memory_key=row.memory_key)
        return channel, {"notice": notice.as_dict()}

    def escalated(self, event: EscalationEvent) -> None:
        """A turn opened an escalation, or added to it: its rows were written with it; deliver now."""
        row = self.escalations.get(event.opened.id)
        if row is None:
            raise LookupError(f"escalation {event.opened.id} is not in the state database")
        kind = OPENED if event.opened.created else UPDATED
        seq = 1 if event.opened.created else len(row.details or [])
        # Idempotent: with this listener registered as the escalations' writer the rows exist already.
        self.outbox.enqueue_many(row, kind, seq, self.deliveries(row, kind, seq, history=event.history))
        self.wake()

    def status_changed(self, event: EscalationStatusEvent) -> None:
        """Someone claimed or resolved an escalation: the channels that track it, and the teacher, are told."""
        row = event.transition.row
        kind = CLAIMED if event.transition.action == "claim" else RESOLVED
        self.outbox.enqueue_many(row, kind, 1, self.deliveries(row, kind, 1, history=event.history))
        self.wake()

    def escalate_unclaimed(self, *, now: datetime | None = None) -> int:
        """Safeguarding concerns nobody claimed within `deputy_after_minutes` go to the deputy too, once.

        The ladder student-safety systems use: the lead first, then a second person, so one absence
        cannot leave a concern unread. Returns the rows written (idempotent: a key is written once).
        """
        sg = self.settings.safeguarding
        deputy = self.route(SAFEGUARDING_DEPUTY, OPENED)
        if not deputy or sg.deputy_after_minutes <= 0:
            return 0
        now = now or utcnow()
        due = now - timedelta(minutes=sg.deputy_after_minutes)
        with self.escalations.db.session() as s:
            rows = list(s.scalars(select(EscalationRow).where(
                EscalationRow.category == SAFEGUARDING_CATEGORY, EscalationRow.status == EscalationStatus.OPEN,
                EscalationRow.created_at <= due, EscalationRow.created_at >= now - timedelta(days=7))
                .order_by(EscalationRow.id).limit(100)).all())
            sent = {r for r in s.scalars(select(OutboxRow.escalation_id).where(
                OutboxRow.escalation_id.in_([r.id for r in rows]), OutboxRow.channel.in_(deputy)))} if rows else set()
        written = 0
        unmasked = self.settings.model_copy(update={"handoff": self.settings.handoff.model_copy(
            update={"mask_transcripts": False})})
        for row in rows:
            if row.id in sent:
                continue
            context = build_context(row, self.memory.history(row.memory_key), unmasked, event=OPENED)
            note = (f"Nobody has claimed this concern {int(sg.deputy_after_minutes)} minutes after it was raised, "
                    "so it comes to you as the deputy safeguarding lead.")
            context = replace(context, status_line=note)
            written += len(self.outbox.enqueue(row, OPENED, 1, deputy, {"context": context.as_dict()}))
            log.warning("%s not claimed after %s minutes: sent to the deputy", row.ticket, sg.deputy_after_minutes)
        if written:
            self.wake()
        return written

    def recover(self, *, days: int | None = None, page: int = 200) -> int:
        """Write the delivery rows any escalation is missing; returns how many.

        Newest first, every escalation changed in the last `days` (settings.outbox.recover_days), teacher
        notices included. With the rows written in the escalation's own transaction this finds nothing,
        unless a process of an older version (or one without this listener) recorded the escalation.
        """
        since = utcnow() - timedelta(days=days or self.outbox.settings.recover_days)
        written = 0
        before_id: int | None = None
        while True:
            query = (select(EscalationRow).where(EscalationRow.updated_at >= since)
                     .order_by(EscalationRow.id.desc()).limit(page))
            if before_id is not None:
                query = query.where(EscalationRow.id < before_id)
            with self.escalations.db.session() as s:
                rows = list(s.scalars(query).all())
                have = {(r.escalation_id, r.event, r.seq, r.channel) for r in s.scalars(select(OutboxRow).where(
                    OutboxRow.escalation_id.in_([r.id for r in rows]))).all()} if rows else set()
            if not rows:
                break
            before_id = rows[-1].id
            for row in rows:
                written += self._recover_one(row, have)
        if written:
            log.warning("outbox recovery wrote %d missing delivery row(s)", written)
            self.wake()
        return written

    def _recover_one(self, row: EscalationRow, have: set[tuple[int, str, int, str]]) -> int:
        wanted = [(OPENED, 1)] + [(UPDATED, n) for n in range(2, len(row.details or []) + 1)]
        if row.claimed_at is not None:
            wanted.append((CLAIMED, 1))
        if row.status == EscalationStatus.RESOLVED:
            wanted.append((RESOLVED, 1))
        written = 0
        history = None
        for kind, seq in wanted:
            channels = self.channels_for(row, kind)
            if kind in (CLAIMED, RESOLVED) and self._tells_teacher(row):
                channels = [*channels, TEACHER_PREFIX + row.platform]
            if all((row.id, kind, seq, c) in have for c in channels):
                continue
            if history is None:
                history = self.memory.history(row.memory_key)
            missing = [(c, p) for c, p in self.deliveries(row, kind, seq, history=history)
                       if (row.id, kind, seq, c) not in have]
            written += len(self.outbox.enqueue_many(row, kind, seq, missing))
        return written
