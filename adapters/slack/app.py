"""The Bolt app: listeners that ack at once, then translate, call the core, and translate back.

Every listener acks first (Slack's three seconds) and then does its work in the same asyncio task,
which Bolt runs after the response has gone (`process_before_response=False`, Bolt's mode for a
long-running server). Lazy listeners were measured and left out: to start one, Bolt deep-copies the
whole request and context, about two thirds of the CPU an ack costs, which showed in the burst
benchmark (benchmarks/slack_ack.py). They exist for FaaS hosts, where nothing may run after the
response; `coach serve slack` is a long-running process.

Messages to answer (app_mention, message) are written to the inbound queue (bot.state.inbound) by a
middleware *before* Bolt acks them: Slack gets 200 only once the event is durable (503 when the
state database cannot take it, so Slack retries), a retry already recorded is acked and dropped,
and a sweeper in every process answers what a killed process acked but never answered.

`Coach.handle` is synchronous and CPU-bound (tens of milliseconds on a quiet machine, far more on a
busy one), so it runs on a small thread pool, never on the event loop that answers Slack.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import kb_draft
from adapters.slack.translate import (
    HANDOFF_ACTIONS, SlackMessage, action_from_payload, after_feedback, handoff_update, is_slack_ts,
    message_from_command, message_from_event, notice, plain_text, question_header, question_message,
    render_reply, search_results, thinking_message,
)
from adapters.wiring import Runtime
from bot.access import Actor, Outcome, Role, policy_from
from bot.checkins.service import CHOICE_ACTIONS
from bot.state.inbound import InboundQueue
from bot.models import InboundMessage
from bot.state.database import StateError
from bot.state.inbound import ProcessedEvents

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMAND = "/coach"
KB_COMMAND = "/coach-kb"
FEEDBACK_ACTION = re.compile(r"^coach\.(helped|not_quite|talk_to_person|tech_problem|read_source|checkin_after_day|checkin_few_days|"
                             r"checkin_next_week|checkin_no|checkin_never|went_well|went_mixed|not_yet)$")
# Posting in a channel the bot is not in: answer privately instead of failing silently.
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}

USAGE = "Ask me a question after the command, for example: `/coach how could my year 5s brainstorm together?`"
KB_USAGE = "Usage: `/coach-kb search <words>` shows how the knowledge base ranks entries for those words."
SORRY = ("Sorry, something went wrong on my side and I couldn't answer that. Please try again in a minute; "
         "if it keeps happening, let an integrator know.")
# Answering an event from the inbound queue: how long state-database failures are retried before
# the event is left for a sweeper, how often the sweeper looks, and when an event is given up.
STATE_RETRY_SECONDS = 10.0
# Recording an event before its ack: a database restarting for a second or two is waited out
# (every 0.25 s, well inside Slack's three seconds) before answering 503.
RECORD_RETRY_SECONDS = 2.0
SWEEP_SECONDS = 3.0
MAX_ATTEMPTS = 5
NOT_IN_CHANNEL = ("I can't post in this channel, so here is my answer just for you. "
                  "To answer in the channel, invite me with `/invite @coach`.")


async def _user_tz(client: AsyncWebClient, user_id: str) -> str | None:
    """The teacher's own time zone from their Slack profile (scope users:read), so a check-in lands in their day."""
    try:
        resp = await client.users_info(user=user_id)
    except SlackApiError as exc:
        log.info("no Slack time zone for a check-in (%s); the school's is used", exc.response.get("error"))
        return None
    tz = (resp.get("user") or {}).get("tz")
    return tz if isinstance(tz, str) and tz else None


def refusal(has_integrators: bool) -> str:
    """The polite no for someone who is not an integrator."""
    text = ("Sorry, that's one of the integrators' tools. If you'd like a hand with something, "
            "ask me with `/coach` or send me a direct message.")
    if not has_integrators:
        text += " (No integrators are set up yet: an admin lists their Slack member ids in `access.integrator.slack`.)"
    return text


class Sink(Protocol):
    """Where an answer goes: a channel or thread (chat.postMessage/update) or a response_url."""

    header: list[dict[str, Any]]

    async def thinking(self) -> None: ...

    async def final(self, message: SlackMessage) -> None: ...


class ChannelSink:
    """Post into a channel or thread; if a message already stands for this answer, update it instead."""

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str | None, *,
                 message_ts: str | None = None, header: Sequence[dict[str, Any]] = ()) -> None:
        self.client, self.channel, self.thread_ts, self.message_ts = client, channel, thread_ts, message_ts
        self.header = list(header)

    async def _send(self, message: SlackMessage) -> None:
        if self.message_ts:
            try:
                await self.client.chat_update(channel=self.channel, ts=self.message_ts, **message.as_kwargs())
                return
            except SlackApiError as exc:
                # Someone deleted the indicator (or question) meanwhile: the answer still goes out.
                if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
                    raise
                self.message_ts = None
        if not self.message_ts:
            resp = await self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts,
                                                      **message.as_kwargs())
            self.message_ts = resp.get("ts")

    async def thinking(self) -> None:
        await self._send(thinking_message(self.header))

    async def final(self, message: SlackMessage) -> None:
        await self._send(message)


class ResponseUrlSink:
    """Answer through a slash command's response_url, privately (ephemeral)."""

    def __init__(self, respond: Callable[..., Awaitable[Any]], header: Sequence[dict[str, Any]] = ()) -> None:
        self.respond = respond
        self.header = list(header)
        self.posted = False

    async def thinking(self) -> None:
        await self.respond(response_type="ephemeral", **thinking_message(self.header).as_kwargs())
        self.posted = True

    async def final(self, message: SlackMessage) -> None:
        await self.respond(response_type="ephemeral", replace_original=self.posted, **message.as_kwargs())


class Bridge:
    """What the listeners share: the runtime, the pools the synchronous core runs on, tasks in flight."""

    def __init__(self, runtime: Runtime, *, drafts_dir: Path | None = None, workers: int = 2) -> None:
        self.runtime = runtime
        self.coach = runtime.coach
        self.settings = runtime.settings
        self.drafts_dir = drafts_dir or runtime.settings.data_dir / "drafts"
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coach")
        # Dedupe claims get their own threads so a retry is recognised even while answers queue up.
        self.claims = ThreadPoolExecutor(max_workers=2, thread_name_prefix="coach-claim")
        self.inflight: set[asyncio.Task[Any]] = set()
        # Events written down before the ack, answered once (bot.state.inbound); the sweeper answers what
        # a killed process left, with `sweep_client` (a client carrying the bot token itself).
        self.inbound = InboundQueue(runtime.db)
        self.sweep_client: AsyncWebClient | None = None
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
        deadline = asyncio.get_running_loop().time() + budget
        while True:
            try:
                return await self.db(fn, *args)
            except StateError:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)

    def _handle_retrying(self, message: InboundMessage) -> Any:
        """Coach.handle, retried while the state database fails (it records the turn), on a pool thread."""
        deadline = time.monotonic() + STATE_RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                return self.coach.handle(message)
            except StateError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def process(self, key: str, client: AsyncWebClient) -> None:
        """Answer one recorded event, if this process wins the claim; then mark it done.

        Safe to call from any process for any key: the claim is a conditional update, and a row
        whose answer was already posted (by a process killed before marking it done) is only
        marked done.
        """
        self.track()
        try:
            row = await self.db_retrying(self.inbound.claim, key)
        except StateError as exc:
            log.warning("cannot claim inbound event %s (left for the sweeper): %s", key, exc)
            return
        if row is None:
            return
        try:
            if row.answer_ts or row.attempts > MAX_ATTEMPTS:
                if not row.answer_ts:
                    log.error("inbound event %s failed %d times; giving up on it", key, row.attempts - 1)
                await self.db_retrying(self.inbound.done, key)
                return
            payload = row.payload
            message = InboundMessage.model_validate(payload["message"])
            sink = ChannelSink(client, payload["channel"], payload.get("thread_ts"))
            if not await self.answer(message, sink, key=key):
                await self.db(self.inbound.release, key)
                return
            await self.db_retrying(self.inbound.done, key)
        except StateError as exc:
            # The lease runs out and a sweeper finishes it (an answer recorded is not posted again).
            log.warning("inbound event %s not marked done: %s", key, exc)

    async def sweep_once(self, client: AsyncWebClient | None = None) -> int:
        """Answer the events due (left pending, or claimed by a process that died); returns how many were tried."""
        client = client or self.sweep_client
        if client is None:
            return 0
        try:
            keys = await self.db(lambda: self.inbound.due(prefix="slack:"))
        except StateError as exc:
            log.warning("inbound sweep skipped: %s", exc)
            return 0
        for key in keys:
            await self.process(key, client)
        return len(keys)

    def start_sweeper(self, interval: float = SWEEP_SECONDS) -> None:
        """Every `interval` seconds, answer what other (killed) processes left behind."""

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

    async def answer(self, message: InboundMessage, sink: Sink, *, key: str | None = None) -> bool:
        """Coach.handle off the loop; a thinking indicator only if it is slow; then the answer.

        With `key` (an inbound-queue event), state-database failures are retried and, if they
        last, nothing is posted (False: the event stays queued); the posted answer's ts is
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
                log.warning("state database failing; event %s left for the sweeper: %s", key, exc)
                return False
            log.exception("Coach.handle failed for a Slack message in %s", message.conversation_id)
            out = notice(SORRY)
        except Exception:
            log.exception("Coach.handle failed for a Slack message in %s", message.conversation_id)
            out = notice(SORRY)
        await sink.final(out)
        answer_ts = getattr(sink, "message_ts", None)
        if key and answer_ts:
            await self.db_retrying(self.inbound.set_answer, key, answer_ts)
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


@dataclass
class SlackApp:
    """The Bolt app and the bridge its listeners use."""

    bolt: AsyncApp
    bridge: Bridge


class _TokenFromEnvironmentIgnored(logging.Filter):
    """AsyncApp reads SLACK_BOT_TOKEN itself and warns that the client's token wins; here it is the same token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


async def _ignore() -> None:
    """Any other event: Bolt has acknowledged it already, so Slack does not retry it."""


Ack = Callable[..., Awaitable[Any]]


def build_app(runtime: Runtime, *, client: AsyncWebClient, signing_secret: str = "",
              auth_test: Mapping[str, Any] | None = None, bot_token: str | None = None,
              drafts_dir: Path | None = None, workers: int = 2) -> SlackApp:
    """The Bolt app with every listener registered.

    `client` carries the API base URL (and the bot token, unless `auth_test` is given). With
    `auth_test` (the start-up auth.test answer) and `bot_token`, requests are authorized from that
    answer: Bolt's default calls auth.test on the first request, and a burst arriving at a fresh
    process would make one call per request before the cache fills.
    """
    settings = runtime.settings
    bridge = Bridge(runtime, drafts_dir=drafts_dir, workers=workers)
    options: dict[str, Any] = {}
    if auth_test is not None:
        known = AuthorizeResult.from_auth_test_response(auth_test_response=auth_test, bot_token=bot_token)

        async def authorize() -> AuthorizeResult:
            return known

        options["authorize"] = authorize
    # process_before_response=False: Bolt answers Slack as soon as ack() is called (events are
    # acked before the listener even starts) and the listener's task carries on with the work.
    bolt_log = logging.getLogger("adapters.slack.bolt")
    quiet = _TokenFromEnvironmentIgnored()
    bolt_log.addFilter(quiet)
    try:
        app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False,
                       logger=bolt_log, **options)
    finally:
        bolt_log.removeFilter(quiet)

    bridge.sweep_client = AsyncWebClient(token=client.token or bot_token, base_url=client.base_url,
                                         session=client.session, retry_handlers=client.retry_handlers)

    # -- the inbound queue: an event is written down before Slack gets its 200 ------------------
    async def record_inbound(body: dict, context: dict, next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        event = body.get("event") if body.get("type") == "event_callback" else None
        event_id = body.get("event_id")
        message = None
        if isinstance(event, dict) and event_id and event.get("type") in ("app_mention", "message"):
            message = message_from_event(event, bot_user_id=context.get("bot_user_id"))
        if message is None:
            await next()
            return None
        key = f"slack:{event_id}"
        payload = {"message": message.model_dump(mode="json"), "channel": message.conversation_id,
                   "thread_ts": message.thread_id if is_slack_ts(message.thread_id) else None}
        try:
            fresh = await bridge.db_retrying(bridge.inbound.record, key, payload, budget=RECORD_RETRY_SECONDS,
                                             delay=0.25, max_delay=0.25)
        except StateError as exc:
            # Never 200 without a durable record: Slack retries a 5xx later.
            log.warning("cannot record event %s, answering 503 so Slack retries: %s", event_id, exc)
            return BoltResponse(status=503, body="")
        if not fresh:
            # A retry (X-Slack-Retry-Num) of an event some process already recorded: ack it, nothing more.
            log.info("event %s already recorded; retry acknowledged", event_id)
            return BoltResponse(status=200, body="")
        context["inbound_key"] = key
        await next()
        return None

    app.middleware(record_inbound)

    # -- conversations -------------------------------------------------------------------------
    async def answer_event(body: dict, event: dict, context: dict, client: AsyncWebClient) -> None:
        # Events are acknowledged by Bolt before this runs (auto-acknowledgement).
        key = context.get("inbound_key")
        if key:  # recorded before the ack: answered once, from the queue
            await bridge.process(key, client)
            return
        message = message_from_event(event, bot_user_id=context.get("bot_user_id"))
        if message is None:
            return
        bridge.track()
        event_id = body.get("event_id")
        # A retry (X-Slack-Retry-Num) carries the same event_id; any process may have it already.
        if event_id and not await bridge.claim(f"slack:{event_id}"):
            log.info("event %s already handled; retry ignored", event_id)
            return
        thread_ts = message.thread_id if is_slack_ts(message.thread_id) else None
        await bridge.answer(message, ChannelSink(client, message.conversation_id, thread_ts))

    app.event("app_mention")(answer_event)
    app.event("message")(answer_event)

    async def answer_command(ack: Ack, command: dict, client: AsyncWebClient, respond: Ack) -> None:
        question = (command.get("text") or "").strip()
        if not question:
            await ack(**notice(USAGE).as_kwargs())
            return
        await ack()
        user, channel = command["user_id"], command["channel_id"]
        shown = plain_text(question)  # Slack-encoded (&lt;, <url|label>) to what the teacher typed
        if settings.slack.ephemeral_slash_replies:
            # Each private /coach question is its own conversation: there is no thread to continue in.
            message = message_from_command(command, thread_id=f"slash-{command.get('trigger_id', user)}")
            await bridge.answer(message, ResponseUrlSink(respond))
            return
        try:
            # The question goes up first so its message (and thread) is the conversation.
            posted = await client.chat_postMessage(channel=channel, **question_message(user, shown).as_kwargs())
        except SlackApiError as exc:
            if exc.response.get("error") not in CANNOT_POST:
                raise
            message = message_from_command(command, thread_id=f"slash-{command.get('trigger_id', user)}")
            header = [notice(NOT_IN_CHANNEL, "coach.not_in_channel").blocks[0]]
            await bridge.answer(message, ResponseUrlSink(respond, header))
            return
        ts = posted["ts"]
        message = message_from_command(command, thread_id=ts)
        await bridge.answer(message, ChannelSink(client, channel, None, message_ts=ts,
                                                 header=question_header(user, shown)))

    app.command(COMMAND)(answer_command)

    # -- feedback buttons ----------------------------------------------------------------------
    async def on_feedback(ack: Ack, body: dict, client: AsyncWebClient, respond: Ack) -> None:
        await ack()
        event = action_from_payload(body)
        if event is None:
            return
        bridge.track()
        if event.action in CHOICE_ACTIONS:
            event = event.model_copy(update={"user_tz": await _user_tz(client, event.user_id)})
        reply = await bridge.run(bridge.coach.handle_action, event)
        if reply is None:  # this click was already counted: nothing is posted twice
            return
        container = body.get("container") or {}
        original = body.get("message") or {}
        ephemeral = bool(container.get("is_ephemeral"))
        # "Read it" leaves the buttons as they are; a verdict replaces them with what was said.
        if event.action.is_feedback and reply.turn_id and original.get("blocks"):
            blocks = after_feedback(original["blocks"], action=event.action, user_id=event.user_id,
                                    direct=event.conversation_id.startswith("D"))
            text = original.get("text") or " "
            if ephemeral:
                await respond(replace_original=True, text=text, blocks=blocks)
            else:
                await client.chat_update(channel=event.conversation_id, ts=container.get("message_ts"),
                                         text=text, blocks=blocks)
        follow = render_reply(reply, thread_id=event.thread_id)
        if ephemeral:
            await respond(response_type="ephemeral", replace_original=False, **follow.as_kwargs())
        else:
            thread_ts = event.thread_id if is_slack_ts(event.thread_id) else None
            await client.chat_postMessage(channel=event.conversation_id, thread_ts=thread_ts, **follow.as_kwargs())

    app.action(FEEDBACK_ACTION)(on_feedback)

    # -- handoffs in the integrators' channel (delivered by the escalation outbox) -------------
    async def on_handoff(ack: Ack, body: dict, action: dict, client: AsyncWebClient, respond: Ack) -> None:
        await ack()
        try:
            escalation_id = int(action.get("value") or "")
        except ValueError:
            log.warning("handoff button with a malformed value %r", action.get("value"))
            return
        kind = HANDOFF_ACTIONS[action["action_id"]]
        who = body.get("user") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        # "claimed by jordan", not an id; the core decides whether this person may act at all.
        actor = Actor(platform="slack", user_id=str(who.get("id") or ""),
                      name=who.get("name") or who.get("username") or None)
        bridge.track()
        result = await bridge.run(bridge.coach.escalation_action, escalation_id, kind, actor)
        if result.outcome is Outcome.REFUSED:
            await respond(response_type="ephemeral", replace_original=False, text=result.message)
            return
        if not result.changed:  # nothing changed (already claimed, already resolved)
            return
        if not channel or channel != settings.slack.integrator_channel:
            # Handoff cards live only in the configured integrators' channel; the outbox redraws that one.
            log.warning("handoff %s recorded; not redrawing a card outside the integrators' channel", kind)
            return
        updated = handoff_update((body.get("message") or {}).get("blocks") or [], text=result.channel_text or "",
                                 action=kind)
        await client.chat_update(channel=channel, ts=container.get("message_ts"), **updated.as_kwargs())

    for action_id in HANDOFF_ACTIONS:
        app.action(action_id)(on_handoff)

    # -- integrators: save a message as a knowledge-base draft; search the knowledge base ------
    async def open_draft(ack: Ack, body: dict, client: AsyncWebClient, respond: Ack) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        if not bridge.is_integrator(user):
            await respond(response_type="ephemeral", text=refusal(bool(settings.slack.integrator_user_ids or settings.access.integrator.slack)))
            return
        view = kb_draft.draft_modal(body.get("message") or {}, channel_id=(body.get("channel") or {}).get("id"))
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    app.message_shortcut(kb_draft.SHORTCUT_CALLBACK)(open_draft)

    async def save_draft(ack: Ack, body: dict, view: dict) -> None:
        # Validation answers in the ack itself (Slack shows the errors in the modal); the file
        # write is local and quick, so it fits inside the three seconds too.
        user = (body.get("user") or {}).get("id", "")
        if not bridge.is_integrator(user):
            await ack(response_action="errors", errors={"kb_title": "Only integrators can save drafts."})
            return
        entry, errors = kb_draft.entry_from_view(view, user_id=user)
        if entry is None:
            await ack(response_action="errors", errors=errors)
            return
        path = await asyncio.to_thread(kb_draft.write_draft, entry, bridge.drafts_dir)
        log.info("knowledge-base draft %s saved by %s", path.name, user)
        await ack(response_action="update", view=kb_draft.saved_view(path, path.stem))

    app.view_submission(kb_draft.VIEW_CALLBACK)(save_draft)

    async def kb_command(ack: Ack, command: dict, respond: Ack) -> None:
        await ack()
        if not bridge.is_integrator(command.get("user_id")):
            await respond(response_type="ephemeral", text=refusal(bool(settings.slack.integrator_user_ids or settings.access.integrator.slack)))
            return
        sub, _, rest = (command.get("text") or "").strip().partition(" ")
        if sub.lower() != "search" or not rest.strip():
            await respond(response_type="ephemeral", **notice(KB_USAGE).as_kwargs())
            return
        result = await bridge.run(bridge.coach.retriever.search, rest.strip(), k=5)
        hits = [(h.entry.id, h.entry.title, h.score) for h in result.hits]
        await respond(response_type="ephemeral", **search_results(rest.strip(), hits, result.confidence).as_kwargs())

    app.command(KB_COMMAND)(kb_command)

    # Any other event an admin subscribed to is acknowledged, so Slack does not retry it.
    app.event(re.compile(".*"))(_ignore)

    @app.error
    async def on_error(error: Exception, body: dict) -> None:
        # Type and the payload's kind only: bodies carry teachers' words, headers carry secrets.
        log.error("Slack listener failed on %s: %s: %s", body.get("type") if isinstance(body, dict) else "?",
                  type(error).__name__, error)

    return SlackApp(app, bridge)
