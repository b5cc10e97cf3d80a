"""The inbound queue's front door, and the answers to messages (app_mention, message).

A middleware writes what needs an answer to the inbound queue (bot.state.inbound) *before* Bolt
acks it: a message event (keyed by its event_id), a /coach question (adapters.slack.commands) or a
click on a coach or handoff button (adapters.slack.actions). Slack gets 200 only once the item is
durable (503 when the state database cannot take it, so Slack retries an event), a redelivery
already recorded is acked and dropped, and a sweeper in every process finishes what a killed
process acked but never answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.actions import action_item
from adapters.slack.commands import command_item
from adapters.slack.sinks import ChannelSink, Mark, find_marked
from adapters.slack.translate import is_slack_ts, message_from_event
from adapters.slack.worker import KEY_PREFIX, Bridge, Kind
from bot.models import InboundMessage
from bot.state.database import StateError
from bot.state.inbound import InboundEventRow

log = logging.getLogger(__name__)

# Recording an item before its ack: a database restarting for a second or two is waited out
# (every 0.25 s, well inside Slack's three seconds) before answering 503.
RECORD_RETRY_SECONDS = 2.0


def event_item(body: Mapping[str, Any], bot_user_id: str | None) -> tuple[str, dict[str, Any]] | None:
    """The inbound key and row payload for a message to answer; None for any other event."""
    event = body.get("event") if body.get("type") == "event_callback" else None
    event_id = body.get("event_id")
    if not isinstance(event, dict) or not event_id or event.get("type") not in ("app_mention", "message"):
        return None
    message = message_from_event(event, bot_user_id=bot_user_id)
    if message is None:
        return None
    return f"{KEY_PREFIX}{event_id}", {
        "kind": Kind.EVENT.value, "message": message.model_dump(mode="json"), "channel": message.conversation_id,
        "thread_ts": message.thread_id if is_slack_ts(message.thread_id) else None, "ts": event.get("ts")}


async def process_event(bridge: Bridge, key: str, row: InboundEventRow, client: AsyncWebClient) -> bool:
    """Answer one recorded message; False leaves it queued."""
    payload = row.payload
    message = InboundMessage.model_validate(payload["message"])
    channel, thread_ts = payload["channel"], payload.get("thread_ts")
    message_ts: str | None = None
    if row.attempts > 1:  # a process may have posted before it died: look before posting again
        found = await find_marked(client, channel, key, thread_ts=thread_ts, oldest=payload.get("ts"))
        if found is not None and found.mark is Mark.ANSWER:
            log.info("inbound item %s was answered already (%s); recorded, not posted again", key, found.ts)
            await bridge.record_answer(key, found.ts)
            return True
        message_ts = found.ts if found is not None else None  # its thinking indicator: updated
    sink = ChannelSink(client, channel, thread_ts, message_ts=message_ts, key=key)
    return await bridge.answer(message, sink, key=key)


def register(app: AsyncApp, bridge: Bridge) -> None:
    """The recording middleware and the message listeners."""

    async def record_inbound(body: dict, context: dict, next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        item = (event_item(body, context.get("bot_user_id")) or command_item(body) or action_item(body))
        if item is None:
            await next()
            return None
        key, payload = item
        try:
            fresh = await bridge.db_retrying(bridge.inbound.record, key, payload, budget=RECORD_RETRY_SECONDS,
                                             delay=0.25, max_delay=0.25)
        except StateError as exc:
            # Never 200 without a durable record: Slack retries a 5xx event later.
            log.warning("cannot record %s, answering 503 so Slack retries: %s", payload["kind"], exc)
            return BoltResponse(status=503, body="")
        if not fresh:
            # A redelivery (X-Slack-Retry-Num, a Socket Mode retry) some process already recorded: ack it, nothing more.
            log.info("%s already recorded; redelivery acknowledged", payload["kind"])
            return BoltResponse(status=200, body="")
        context["inbound_key"] = key
        await next()
        return None

    app.middleware(record_inbound)

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
        if event_id and not await bridge.claim(f"{KEY_PREFIX}{event_id}"):
            log.info("event %s already handled; retry ignored", event_id)
            return
        thread_ts = message.thread_id if is_slack_ts(message.thread_id) else None
        await bridge.answer(message, ChannelSink(client, message.conversation_id, thread_ts))

    app.event("app_mention")(answer_event)
    app.event("message")(answer_event)
    bridge.handlers[Kind.EVENT] = process_event
