"""The Bolt app: listeners that ack at once, then translate, call the core, and translate back.

Every listener acks first (Slack's three seconds) and then does its work in the same asyncio task,
which Bolt runs after the response has gone (`process_before_response=False`, Bolt's mode for a
long-running server). Lazy listeners were measured and left out: to start one, Bolt deep-copies the
whole request and context, about two thirds of the CPU an ack costs, which showed in the burst
benchmark (benchmarks/slack_ack.py). They exist for FaaS hosts, where nothing may run after the
response; `coach serve slack` is a long-running process.

`Coach.handle` is synchronous and CPU-bound (tens of milliseconds on a quiet machine, far more on a
busy one), so it runs on a small thread pool, never on the event loop that answers Slack.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

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
from bot.models import InboundMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMAND = "/coach"
KB_COMMAND = "/coach-kb"
FEEDBACK_ACTION = re.compile(r"^coach\.(helped|not_quite|talk_to_person|tech_problem)$")
# Posting in a channel the bot is not in: answer privately instead of failing silently.
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}

USAGE = "Ask me a question after the command, for example: `/coach how could my year 5s brainstorm together?`"
KB_USAGE = "Usage: `/coach-kb search <words>` shows how the knowledge base ranks entries for those words."
SORRY = ("Sorry, something went wrong on my side and I couldn't answer that. Please try again in a minute; "
         "if it keeps happening, let an integrator know.")
NOT_IN_CHANNEL = ("I can't post in this channel, so here is my answer just for you. "
                  "To answer in the channel, invite me with `/invite @coach`.")


def refusal(has_integrators: bool) -> str:
    """The polite no for someone who is not an integrator."""
    text = ("Sorry, that's one of the integrators' tools. If you'd like a hand with something, "
            "ask me with `/coach` or send me a direct message.")
    if not has_integrators:
        text += " (No integrators are set up yet: an admin lists their Slack user ids in `slack.integrator_user_ids`.)"
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

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous core call off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))

    async def claim(self, key: str) -> bool:
        """True the first time an event is seen by any process sharing the state database."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.claims, self.runtime.db.claim_event, key)

    def is_integrator(self, user_id: str | None) -> bool:
        """Integrators are the Slack user ids listed in `slack.integrator_user_ids`."""
        return bool(user_id) and user_id in self.settings.slack.integrator_user_ids

    def track(self) -> None:
        """Count the current task as an answer in flight, so shutdown can wait for it."""
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)

    async def answer(self, message: InboundMessage, sink: Sink) -> None:
        """Coach.handle off the loop; a thinking indicator only if it is slow; then the answer."""
        self.track()
        job = asyncio.get_running_loop().run_in_executor(self.pool, self.coach.handle, message)
        done, _ = await asyncio.wait({job}, timeout=self.settings.slack.thinking_after_seconds)
        if not done:
            try:
                await sink.thinking()
            except SlackApiError as exc:  # the answer still goes out, as a new message
                log.warning("could not post the thinking indicator: %s", exc.response.get("error"))
        try:
            reply = await job
            out = render_reply(reply, thread_id=message.thread_id, header=sink.header)
        except Exception:
            log.exception("Coach.handle failed for a Slack message in %s", message.conversation_id)
            out = notice(SORRY)
        await sink.final(out)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for answers still being written, then stop the pools."""
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

    # -- conversations -------------------------------------------------------------------------
    async def answer_event(body: dict, event: dict, context: dict, client: AsyncWebClient) -> None:
        # Events are acknowledged by Bolt before this runs (auto-acknowledgement).
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
        reply = await bridge.run(bridge.coach.handle_action, event)
        if reply is None:  # this click was already counted: nothing is posted twice
            return
        container = body.get("container") or {}
        original = body.get("message") or {}
        ephemeral = bool(container.get("is_ephemeral"))
        if reply.turn_id and original.get("blocks"):
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
        escalation_action = getattr(bridge.coach, "escalation_action", None)
        if escalation_action is None:
            log.error("a handoff button was clicked but Coach.escalation_action is not available")
            await respond(response_type="ephemeral", replace_original=False,
                          text="Claiming and resolving handoffs isn't available in this version of the coach.")
            return
        try:
            escalation_id = int(action.get("value") or "")
        except ValueError:
            log.warning("handoff button with a malformed value %r", action.get("value"))
            return
        kind = HANDOFF_ACTIONS[action["action_id"]]
        who = body.get("user") or {}
        extra = {}
        if "user_name" in inspect.signature(escalation_action).parameters:
            extra["user_name"] = who.get("name") or who.get("username")  # "claimed by jordan", not an id
        bridge.track()
        text = await bridge.run(escalation_action, escalation_id, kind, who.get("id", ""), **extra)
        if text is None:  # nothing changed (already claimed, already resolved)
            return
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        updated = handoff_update((body.get("message") or {}).get("blocks") or [], text=text, action=kind)
        await client.chat_update(channel=channel, ts=container.get("message_ts"), **updated.as_kwargs())

    for action_id in HANDOFF_ACTIONS:
        app.action(action_id)(on_handoff)

    # -- integrators: save a message as a knowledge-base draft; search the knowledge base ------
    async def open_draft(ack: Ack, body: dict, client: AsyncWebClient, respond: Ack) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        if not bridge.is_integrator(user):
            await respond(response_type="ephemeral", text=refusal(bool(settings.slack.integrator_user_ids)))
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
            await respond(response_type="ephemeral", text=refusal(bool(settings.slack.integrator_user_ids)))
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
