"""The bridge the listeners share, and the worker side of the inbound queue.

Everything Slack sends that needs an answer (messages, /coach, button clicks) is written to the
inbound queue (bot.state.inbound) by a middleware before Bolt acks it; the listener then calls
`Bridge.process`, which claims the row and hands it to the handler registered for its kind
(adapters.slack.events, .commands, .actions). A sweeper in every process does the same for rows a
killed process left, so each is acted on once: a retried delivery finds its row already there.

`Coach.handle` is synchronous and CPU-bound (tens of milliseconds on a quiet machine, far more on a
busy one), so it runs on a small thread pool, never on the event loop that answers Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import ClientSession
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.sinks import Sink
from adapters.slack.translate import notice, render_reply
from adapters.wiring import Runtime
from bot.access import Actor, Role, policy_from
from bot.models import InboundMessage
from bot.retry import retry, retry_async
from bot.state.database import StateError
from bot.state.inbound import InboundEventRow, InboundQueue, ProcessedEvents

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "slack:"
SORRY = ("Sorry, something went wrong on my side and I couldn't answer that. Please try again in a minute; "
         "if it keeps happening, let an integrator know.")
# Answering an item from the inbound queue: how long state-database failures are retried before
# the item is left for a sweeper, how often the sweeper looks, and when an item is given up.
STATE_RETRY_SECONDS = 10.0
SWEEP_SECONDS = 3.0
MAX_ATTEMPTS = 5


class Kind(StrEnum):
    """What an inbound row holds (its payload's "kind"); rows written before kinds existed are events."""

    EVENT = "event"
    COMMAND = "command"
    ACTION = "action"


# A handler acts on one claimed row; False leaves it for the sweeper (released), True marks it done.
Handler = Callable[["Bridge", str, InboundEventRow, AsyncWebClient], Awaitable[bool]]


class Bridge:
    """What the listeners share: the runtime, the pools the synchronous core runs on, tasks in flight."""

    def __init__(self, runtime: Runtime, *, drafts_dir: Path | None = None, workers: int = 2) -> None:
        self.runtime = runtime
        self.coach = runtime.coach
        self.settings = runtime.settings
        self.drafts_dir = drafts_dir or runtime.settings.data_dir / "drafts"
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coach")
        # An item is claimed only when a thread is free to answer it: a claim made while the item
        # waits behind a backlog would run out its lease there, and another process's sweeper
        # would answer it a second time. Unclaimed items stay pending for any process's sweeper.
        self.slots = asyncio.Semaphore(workers)
        # Dedupe claims get their own threads so a retry is recognised even while answers queue up.
        self.claims = ThreadPoolExecutor(max_workers=2, thread_name_prefix="coach-claim")
        self.inflight: set[asyncio.Task[Any]] = set()
        self.inbound = InboundQueue(runtime.db)
        self.handlers: dict[Kind, Handler] = {}
        # The sweeper acts with `sweep_client` (a client carrying the bot token itself); response_urls
        # are answered over `session` when there is one.
        self.sweep_client: AsyncWebClient | None = None
        self.session: ClientSession | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous core call off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))

    async def claim(self, key: str) -> bool:
        """True the first time an event is seen by any process sharing the state database."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.claims, ProcessedEvents(self.runtime.db).claim, key)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """A state-database call on the claims threads (never queued behind answers)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.claims, lambda: fn(*args))

    async def db_retrying(self, fn: Callable[..., T], *args: Any, budget: float = STATE_RETRY_SECONDS,
                          delay: float = 0.2, max_delay: float = 2.0) -> T:
        """`db`, retrying a StateError (a database restarting) with a short backoff for up to `budget` seconds."""
        return await retry_async(lambda: self.db(fn, *args), on=StateError, budget=budget, delay=delay,
                                 max_delay=max_delay)

    def _handle_retrying(self, message: InboundMessage) -> Any:
        """Coach.handle, retried while the state database fails (it records the turn), on a pool thread."""
        return retry(lambda: self.coach.handle(message), on=StateError, budget=STATE_RETRY_SECONDS, delay=0.2,
                     max_delay=2.0)

    async def process(self, key: str, client: AsyncWebClient) -> None:
        """Act on one recorded item, if this process wins the claim; then mark it done.

        Safe to call from any process for any key: the claim is a conditional update, and a row
        whose answer was already posted (by a process killed before marking it done) is only
        marked done.
        """
        self.track()
        async with self.slots:
            await self._process(key, client)

    async def _process(self, key: str, client: AsyncWebClient) -> None:
        try:
            row = await self.db_retrying(self.inbound.claim, key)
        except StateError as exc:
            log.warning("cannot claim inbound item %s (left for the sweeper): %s", key, exc)
            return
        if row is None:
            return
        try:
            if row.answer_ts or row.attempts > MAX_ATTEMPTS:
                if not row.answer_ts:
                    log.error("inbound item %s failed %d times; giving up on it", key, row.attempts - 1)
                await self.db_retrying(self.inbound.done, key)
                return
            handler = self.handlers[Kind(row.payload.get("kind", Kind.EVENT))]
            try:
                finished = await handler(self, key, row, client)
            except (SlackApiError, OSError) as exc:  # Slack unreachable or refusing: try again later
                log.warning("inbound item %s not answered (%s); left for the sweeper", key,
                            exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__)
                finished = False
            if not finished:
                await self.db(self.inbound.release, key)
                return
            await self.db_retrying(self.inbound.done, key)
        except StateError as exc:
            # The lease runs out and a sweeper finishes it (an answer recorded is not posted again).
            log.warning("inbound item %s not marked done: %s", key, exc)

    async def sweep_once(self, client: AsyncWebClient | None = None) -> int:
        """Act on the items due (left pending, or claimed by a process that died); returns how many were tried."""
        client = client or self.sweep_client
        if client is None:
            return 0
        try:
            keys = await self.db(lambda: self.inbound.due(prefix=KEY_PREFIX))
        except StateError as exc:
            log.warning("inbound sweep skipped: %s", exc)
            return 0
        for key in keys:
            await self.process(key, client)
        return len(keys)

    def start_sweeper(self, interval: float = SWEEP_SECONDS) -> None:
        """Every `interval` seconds, act on what other (killed) processes left behind."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.sweep_once()
                except Exception:  # never let one bad row stop the sweeper
                    log.exception("inbound sweep failed")

        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(loop())

    def is_integrator(self, user_id: str | None) -> bool:
        """An integrator by the access policy (`access.integrator.slack`, or `slack.integrator_user_ids`)."""
        return bool(user_id) and policy_from(self.settings).has_role(Actor(platform="slack", user_id=user_id),
                                                                     Role.INTEGRATOR)

    def track(self) -> None:
        """Count the current task as an answer in flight, so shutdown can wait for it."""
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)

    async def record_answer(self, key: str, answer_ts: str) -> None:
        """Write down what answered an item (a message ts, or a marker for a response_url)."""
        await self.db_retrying(self.inbound.set_answer, key, answer_ts)

    async def answer(self, message: InboundMessage, sink: Sink, *, key: str | None = None) -> bool:
        """Coach.handle off the loop; a thinking indicator only if it is slow; then the answer.

        With `key` (an inbound-queue item), state-database failures are retried and, if they
        last, nothing is posted (False: the item stays queued); the posted answer's ts is
        recorded in the queue right after posting.
        """
        self.track()
        handle = self._handle_retrying if key else self.coach.handle
        job = asyncio.get_running_loop().run_in_executor(self.pool, handle, message)
        done, _ = await asyncio.wait({job}, timeout=self.settings.slack.thinking_after_seconds)
        if not done:
            try:
                await sink.thinking()
            except SlackApiError as exc:  # the answer still goes out, as a new message
                log.warning("could not post the thinking indicator: %s", exc.response.get("error"))
        try:
            reply = await job
            out = render_reply(reply, thread_id=message.thread_id, header=sink.header)
        except StateError as exc:
            if key:
                log.warning("state database failing; item %s left for the sweeper: %s", key, exc)
                return False
            log.exception("Coach.handle failed for a Slack message in %s", message.conversation_id)
            out = notice(SORRY)
        except Exception:
            log.exception("Coach.handle failed for a Slack message in %s", message.conversation_id)
            out = notice(SORRY)
        await sink.final(out)
        if key:
            await self.record_answer(key, getattr(sink, "message_ts", None) or "response_url")
        return True

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for answers still being written, then stop the pools."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        pending = {t for t in self.inflight if t is not asyncio.current_task()}
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.claims.shutdown(wait=False, cancel_futures=True)
