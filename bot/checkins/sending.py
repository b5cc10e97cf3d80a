"""Sending check-ins exactly once: `CheckinDispatcher` claims due rows and sends each through its
platform's `CheckinSender` (adapters/delivery/checkin_senders.py); `CheckinWorker` runs it in a
background thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from bot.checkins.report import CHECKIN_COMPOSER
from bot.checkins.service import CHECKIN_REASON, CheckinService
from bot.checkins.store import CheckinRow
from bot.models import Action, Reply, Route
from bot.retry import backoff

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class CheckinMessage:
    """A check-in as a platform sender receives it: where it goes and the reply to draw."""

    checkin_id: int
    platform: str
    conversation_id: str
    thread_id: str | None
    user_id: str
    memory_key: str
    platform_ref: dict[str, Any]
    reply: Reply
    attempt: int = 1


class CheckinSender(Protocol):
    """Posts a check-in in the conversation it was offered in (Slack Web API, Teams proactive message)."""

    platform: str

    def send_checkin(self, message: CheckinMessage) -> dict[str, Any] | None:
        """Post it; return a receipt (e.g. the Slack ts) or None; raise on failure."""
        ...


@dataclass
class SendReport:
    """What one pass of `CheckinDispatcher.deliver_due` did."""

    claimed: int = 0
    sent: int = 0
    postponed: int = 0
    failed: int = 0


class CheckinDispatcher:
    """Claims due check-ins (a lease), checks school hours in the teacher's zone, sends each once."""

    def __init__(self, service: CheckinService, senders: Iterable[CheckinSender] = (), *,
                 owner: str | None = None) -> None:
        self.service = service
        self.senders: dict[str, CheckinSender] = {s.platform: s for s in senders}
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def add_sender(self, sender: CheckinSender) -> None:
        """A platform's sender (an adapter's own, bound to its event loop, replaces the default)."""
        self.senders[sender.platform] = sender

    def deliver_due(self, limit: int = 20) -> SendReport:
        """Send what is due now for this process's platforms; outside school hours, put it off."""
        report = SendReport()
        checkins, calendar, clock = self.service.checkins, self.service.calendar, self.service.clock
        for _ in range(limit):
            if not self.senders:
                break
            row = checkins.claim_due(self.owner, list(self.senders))
            if row is None:
                break
            report.claimed += 1
            now = clock()
            if not calendar.in_hours(now, row.tz):
                checkins.postpone(row.id, self.owner, calendar.next_window(now, row.tz))
                report.postponed += 1
                continue
            try:
                self._send(row)
                report.sent += 1
            except Exception as exc:  # a platform error: try again later, then give up and say so
                error = f"{type(exc).__name__}: {exc}"
                if row.attempts >= MAX_ATTEMPTS or getattr(exc, "permanent", False):
                    checkins.mark_failed(row.id, self.owner, error)
                    log.error("check-in %s failed for good: %s", row.id, error)
                    report.failed += 1
                else:
                    retry = calendar.next_window(now + timedelta(seconds=backoff(row.attempts, base=60, cap=3600)), row.tz)
                    checkins.postpone(row.id, self.owner, retry, error[:500])
                    log.warning("check-in %s not sent (%s); trying again at %s", row.id, error, retry.isoformat())
                    report.postponed += 1
        return report

    def _send(self, row: CheckinRow) -> None:
        service = self.service
        text = service.checkin_text(row)
        turn_id = row.sent_turn_id
        if turn_id is None:
            # The check-in is a turn of the conversation: its buttons resolve, and a typed answer is a follow-up.
            turn_id = service.memory.record(memory_key=row.memory_key, platform=row.platform, user_id=row.user_id,
                                            text=row.plan, route=Route.COACH.value, reason=CHECKIN_REASON, reply=text,
                                            sources=list(row.sources or []), confidence=0.0, composer=CHECKIN_COMPOSER)
            service.checkins.set_sent_turn(row.id, turn_id)
        reply = Reply(text=text, route=Route.COACH, turn_id=turn_id,
                      actions=[Action.WENT_WELL, Action.WENT_MIXED, Action.NOT_YET])
        message = CheckinMessage(checkin_id=row.id, platform=row.platform, conversation_id=row.conversation_id,
                                 thread_id=row.thread_id, user_id=row.user_id, memory_key=row.memory_key,
                                 platform_ref=dict(row.platform_ref or {}), reply=reply, attempt=row.attempts)
        receipt = self.senders[row.platform].send_checkin(message)
        if not service.checkins.mark_sent(row.id, self.owner, receipt):
            log.warning("check-in %s sent, but its lease had passed to another process", row.id)


class CheckinWorker:
    """Sends due check-ins from a daemon thread, every `poll_seconds` or when woken."""

    def __init__(self, dispatcher: CheckinDispatcher, poll_seconds: float = 30.0) -> None:
        self.dispatcher = dispatcher
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.report = SendReport()

    def start(self) -> CheckinWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="coach-checkins", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self.dispatcher.deliver_due()
                self.report.sent += report.sent
                if report.claimed and not self._stop.is_set():
                    continue
            except Exception:  # the database may be down for a moment; try at the next poll
                log.exception("check-in pass failed")
            self._wake.wait(self.poll_seconds)
