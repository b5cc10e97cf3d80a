"""The outbox's background worker: a daemon thread that drains due rows and runs the periodic sweeps."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.handoff.outbox import DrainReport, Outbox
from bot.state.database import utcnow

log = logging.getLogger(__name__)


class OutboxWorker:
    """Drains the outbox in a daemon thread: at once when woken, else when the next row falls due."""

    def __init__(self, outbox: Outbox, *, poll_seconds: float | None = None,
                 on_start: Callable[[], Any] | None = None, recover_seconds: float | None = None,
                 on_poll: Callable[[], Any] | None = None) -> None:
        self.outbox = outbox
        self.poll_seconds = poll_seconds or outbox.settings.poll_seconds
        # Recovery (`on_start`) runs at start and then every `recover_seconds` while the worker runs.
        self.on_start = on_start
        self.recover_seconds = recover_seconds or outbox.settings.recover_seconds
        self._recovered_at = float("-inf")
        self.on_poll = on_poll  # periodic work beside delivery (the safeguarding deputy ladder)
        self._polled = float("-inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush = False
        self._thread: threading.Thread | None = None
        self.report = DrainReport()

    def start(self) -> OutboxWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="coach-outbox", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """A row was written: deliver now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0, *, flush: bool = False) -> None:
        """Stop after the row in hand (with `flush`, after everything due now); waits at most `timeout`.

        Undelivered rows stay in the outbox for the next start; a row left mid-delivery is retried
        when its lease runs out.
        """
        self._flush = flush
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _recover(self) -> None:
        if self.on_start is None or time.monotonic() - self._recovered_at < self.recover_seconds:
            return
        self._recovered_at = time.monotonic()
        try:
            self.on_start()
        except Exception:  # the database may be down for a moment; the next round tries again
            log.exception("outbox recovery failed; continuing with delivery")

    def _run(self) -> None:
        while not (self._stop.is_set() and not self._flush):
            self._wake.clear()
            if not self._stop.is_set():
                self._recover()
            if self.on_poll is not None and time.monotonic() - self._polled >= self.poll_seconds:
                self._polled = time.monotonic()
                try:
                    self.on_poll()
                except Exception:  # the database may be down for a moment; the next round tries again
                    log.exception("outbox periodic check failed; continuing with delivery")
            try:
                report = self.outbox.deliver_due()
                self.report.add(report)
                if report.claimed:
                    continue  # there may be more due right now
                if self._stop.is_set():
                    break  # flushed: nothing more is due
                wait = min(self.poll_seconds, max(self._recovered_at + self.recover_seconds - time.monotonic(), 0.05))
                due = self.outbox.next_due()
                if due is not None:
                    wait = min(wait, max((due - utcnow()).total_seconds(), 0.05))
            except Exception:  # the database may be down for a moment; try again at the next poll
                log.exception("outbox drain failed")
                if self._stop.is_set():
                    break
                wait = self.poll_seconds
            self._wake.wait(wait)
