"""Teams messages answered after the HTTP request: recorded first, then answered by a worker.

The Bot Framework waits for the HTTP answer to /api/messages and retries a delivery it thinks
timed out, so a teacher's message is not answered inside the request any more. The turn writes
the message down in the inbound queue (bot.state.inbound), keyed by its activity id, and the
request is answered at once: 202 when it was recorded, 200 for a delivery already recorded (a
retry), 503 when the state database cannot take it (the Bot Framework tries again later).

A worker in the same process then claims the row (a lease), runs `Coach.handle` on its own
threads and sends the reply as a reply to the teacher's message with `continue_conversation`
on the server's CloudAdapter (the proactive path), using the conversation reference stored in
the row. A process killed in between leaves a row whose lease runs out; any Teams process's
sweeper answers it, and `Coach.handle`, idempotent per message id, returns the reply it
recorded without opening or notifying an escalation twice. Messages in one conversation are
answered in the order they arrived, so a follow-up sees the turn before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, TypeVar

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.teams import cards
from adapters.teams.references import ReferenceStore
from bot.models import InboundMessage, Reply
from bot.state.database import StateError
from bot.state.inbound import InboundEventRow, InboundQueue

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "teams:"
KEY_CHARS = 300  # inbound_events.key
# A claim holds this long: over a slow turn under load (28 s was seen) plus sending, so a busy
# process is not overtaken by another's sweeper while it is still composing.
LEASE_SECONDS = 120.0
SWEEP_SECONDS = 3.0
MAX_ATTEMPTS = 5
TYPING_AFTER_SECONDS = 1.0
TYPING_REPEAT_SECONDS = 3.0  # Teams shows a typing indicator for about three seconds
SORRY = "Sorry, something went wrong on my side. Please try again in a minute."


class Ack(IntEnum):
    """What /api/messages answers for a message activity the turn queued."""

    QUEUED = 202  # recorded; the answer follows from the worker
    REPEATED = 200  # already recorded (a retried delivery): acknowledged, nothing more
    NOT_RECORDED = 503  # the state database failed: the Bot Framework retries later


@dataclass
class AckNote:
    """Filled in by the turn, read by the request handler after the SDK returns."""

    status: Ack | None = None


# The request handler puts a fresh note here around CloudAdapter.process; the turn runs inside that call.
ACK_NOTE: ContextVar[AckNote | None] = ContextVar("teams_ack_note", default=None)


def note_ack(status: Ack) -> None:
    """Tell the request handler how to answer this request (no-op outside one, e.g. with a TestAdapter)."""
    note = ACK_NOTE.get()
    if note is not None:
        note.status = status


def inbound_key(activity: Activity) -> str | None:
    """`teams:<conversation>:<activity id>`; None when the activity has no id to dedupe by."""
    if not activity.id or activity.conversation is None or not activity.conversation.id:
        return None
    key = f"{KEY_PREFIX}{activity.conversation.id}:{activity.id}"
    if len(key) <= KEY_CHARS:
        return key
    # A long channel id: a digest keeps different conversations apart where truncating would not.
    digest = hashlib.sha256(activity.conversation.id.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{digest}:{activity.id}"[:KEY_CHARS]


def queued_payload(activity: Activity, message: InboundMessage) -> dict[str, Any]:
    """What a row holds: the translated message, and where to answer it (a reply to the activity)."""
    reference = TurnContext.get_conversation_reference(activity).serialize()
    return {"message": message.model_dump(mode="json"), "reference": reference}


class Handles(Protocol):
    """The one core call the worker makes (`bot.coach.Coach` satisfies it)."""

    def handle(self, message: InboundMessage) -> Reply: ...


class DeliveryFailed(RuntimeError):
    """The Bot Connector refused or failed the reply; the row is left for the sweeper."""


class _InOrder:
    """One asyncio lock per conversation, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, conversation: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(conversation, (asyncio.Lock(), 0))
        self._locks[conversation] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation]
            if users <= 1:
                del self._locks[conversation]
            else:
                self._locks[conversation] = (lock, users - 1)


class TeamsWorker:
    """Records message activities before the ack and answers them afterwards, once."""

    def __init__(self, coach: Handles, queue: InboundQueue, adapter: BotAdapter, *,
                 references: ReferenceStore | None = None, app_id: str | None = None,
                 typing_after: float | None = TYPING_AFTER_SECONDS, workers: int = 2,
                 sweep_seconds: float = SWEEP_SECONDS) -> None:
        """`adapter` is the server's CloudAdapter; `app_id` is MicrosoftAppId (None in emulator mode)."""
        self.coach = coach
        self.queue = queue
        self.adapter = adapter
        self.references = references
        self.app_id = app_id or ""
        self.typing_after = typing_after
        self.sweep_seconds = sweep_seconds
        # Coach.handle is CPU-bound: its own few threads, so the database calls the acks make
        # (on the loop's default executor) never queue behind composing.
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coach-teams")
        # The answering side's database calls (claim, done, the card) on threads of their own: the
        # acks' inserts (the loop's default executor) never queue behind a backlog's bookkeeping.
        self.db_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="coach-teams-db")
        # A message is claimed only when a thread is free to compose it. Under a backlog the rest
        # stay pending (any process's sweeper may take them), their leases do not run out while
        # they wait, and no typing indicators are sent for answers not being composed: the loop
        # stays free for the acks.
        self.slots = asyncio.Semaphore(workers)
        self.inflight: set[asyncio.Task[None]] = set()
        self._order = _InOrder()
        self._sweeper: asyncio.Task[None] | None = None

    # -- the ack path -------------------------------------------------------------------------

    async def enqueue(self, activity: Activity, message: InboundMessage) -> Ack:
        """Write the message down and start answering it; the request is answered with the result."""
        key = inbound_key(activity)
        if key is None:  # nothing to dedupe or find it again by: still recorded, under a fresh id
            key = f"{KEY_PREFIX}{message.conversation_id}:{message.received_at.timestamp()}"[:KEY_CHARS]
        try:
            fresh = await _in_thread(self.queue.record, key, queued_payload(activity, message))
        except StateError as exc:
            log.warning("cannot record Teams activity %s; answering 503 so it is delivered again: %s",
                        activity.id, exc)
            return Ack.NOT_RECORDED
        if not fresh:
            log.info("Teams activity %s already recorded; the repeated delivery is acknowledged", activity.id)
            return Ack.REPEATED
        self._start(key, activity.conversation.id if activity.conversation else None)
        return Ack.QUEUED

    def _start(self, key: str, conversation: str | None) -> asyncio.Task[None]:
        # Tracked, so shutdown (and `idle`) waits for the answer being sent.
        task = asyncio.get_running_loop().create_task(self.process(key, conversation))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        return task

    # -- answering ----------------------------------------------------------------------------

    async def process(self, key: str, conversation: str | None = None) -> None:
        """Answer one recorded message if this process wins the claim, then mark it done.

        Safe for any key from any process: the claim is a conditional update, and a row whose
        answer was already sent (by a process killed before marking it done) is only marked done.
        """
        if conversation is not None:  # taken before the claim, so messages keep their order
            async with self._order.turn(conversation), self.slots:
                await self._process(key)
            return
        async with self.slots:
            await self._process(key)

    async def _process(self, key: str) -> None:
        try:
            row = await self._db(self.queue.claim, key)
        except StateError as exc:
            log.warning("cannot claim Teams message %s (left for the sweeper): %s", key, exc)
            return
        if row is None:
            return
        try:
            if row.answer_ts or row.attempts > MAX_ATTEMPTS:
                if not row.answer_ts:
                    log.error("Teams message %s failed %d times; giving up on it", key, row.attempts - 1)
                await self._db(self.queue.done, key)
                return
            await self._answer(key, row)
        except StateError as exc:  # the lease runs out and a sweeper finishes it
            log.warning("Teams message %s not finished: %s", key, exc)
        except DeliveryFailed as exc:
            log.warning("Teams message %s: %s; left for the sweeper", key, exc)
            with contextlib.suppress(StateError):  # if it cannot be released, its lease runs out instead
                await self._db(self.queue.release, key)

    async def _answer(self, key: str, row: InboundEventRow) -> None:
        message = InboundMessage.model_validate(row.payload["message"])
        reference = ConversationReference().deserialize(row.payload["reference"])
        try:
            reply: Reply | None = await self._compose(reference, message)
        except StateError:
            await self._db(self.queue.release, key)  # the database is failing: try again later
            return
        except Exception:
            log.exception("Coach.handle failed for a Teams message in %s", message.conversation_id)
            reply = None
        if reply is None:
            answer_id = await self._deliver(reference, Activity(type=ActivityTypes.message, text=SORRY))
        else:
            card = cards.reply_card(reply)
            answer_id = await self._deliver(reference, cards.card_activity(card, reply.text))
            if self.references is not None and reply.turn_id and reply.actions and answer_id:
                try:  # before `done`, so a click on the card finds it
                    await self._db(self.references.save_card, reply.turn_id, answer_id,
                                     reference.conversation.id, card)
                except Exception:  # the card works without it; only the redraw after a click is lost
                    log.exception("could not remember the card for turn %s", reply.turn_id)
        await self._db(self.queue.set_answer, key, answer_id or "sent")
        await self._db(self.queue.done, key)

    async def _compose(self, reference: ConversationReference, message: InboundMessage) -> Reply:
        """Coach.handle on the worker's threads, with a typing indicator if it takes a while."""
        future = asyncio.get_running_loop().run_in_executor(self.pool, self.coach.handle, message)
        if self.typing_after is not None:
            done, _ = await asyncio.wait({future}, timeout=self.typing_after)
            while not done:
                try:
                    await self._deliver(reference, Activity(type=ActivityTypes.typing))
                except DeliveryFailed:  # the answer matters, the indicator does not
                    log.info("could not send the typing indicator")
                done, _ = await asyncio.wait({future}, timeout=TYPING_REPEAT_SECONDS)
        return await future

    async def _deliver(self, reference: ConversationReference, activity: Activity) -> str | None:
        """Send `activity` as a reply to the teacher's message through CloudAdapter.continue_conversation."""
        outgoing = TurnContext.apply_conversation_reference(activity, reference)  # replyToId: their message
        result: dict[str, Any] = {}

        async def logic(turn_context: TurnContext) -> None:
            # Errors are carried out of the turn: the adapter's on_turn_error would apologise instead.
            try:
                responses = await turn_context.adapter.send_activities(turn_context, [outgoing])
                result["id"] = responses[0].id if responses else None
            except Exception as exc:
                result["error"] = exc

        try:
            await self.adapter.continue_conversation(reference, logic, self.app_id)
        except Exception as exc:  # no token, an unreachable service URL
            raise DeliveryFailed(f"cannot continue the conversation ({type(exc).__name__})") from exc
        error = result.get("error")
        if error is not None:
            raise DeliveryFailed(f"the Bot Connector did not take the {activity.type} "
                                 f"({type(error).__name__})") from error
        return result.get("id")

    async def _db(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db_pool, lambda: call(*args, **kwargs))

    # -- the sweeper --------------------------------------------------------------------------

    async def sweep_once(self) -> int:
        """Answer the Teams messages due (left pending, or claimed by a process that died); returns how many."""
        try:
            keys = await self._db(self.queue.due, prefix=KEY_PREFIX)
        except StateError as exc:
            log.warning("Teams inbound sweep skipped: %s", exc)
            return 0
        for key in keys:
            await self._start(key, None)
        return len(keys)

    def start(self) -> None:
        """Every `sweep_seconds`, answer what this or another (killed) process left behind."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.sweep_seconds)
                try:
                    await self.sweep_once()
                except Exception:  # one bad row never stops the sweeper
                    log.exception("Teams inbound sweep failed")

        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(loop())

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until the answers in flight are sent."""
        pending = {t for t in self.inflight if t is not asyncio.current_task()}
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop sweeping, let answers in flight finish (bounded), stop the threads."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await self.idle(timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.db_pool.shutdown(wait=False, cancel_futures=True)


async def _in_thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # Database calls are synchronous; keep them off the event loop.
    return await asyncio.get_running_loop().run_in_executor(None, lambda: call(*args, **kwargs))
