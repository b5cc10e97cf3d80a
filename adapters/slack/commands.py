"""Slash commands: `/coach <question>` (through the inbound queue) and `/coach-kb search` (integrators).

A /coach command is written to the inbound queue before Bolt acks it (adapters.slack.events), keyed
by team, channel, user and trigger_id, so a redelivered command is acked and dropped. The worker
(`process_command`) then posts the question in the channel and updates that message with the
answer, both carrying the key in message metadata: a sweeper finishing a command whose process
died looks for them first, and updates the question it finds instead of posting another.
With `slack.ephemeral_slash_replies`, or in a channel the bot cannot post in, the answer goes
privately through the command's response_url, stored with the row so any process can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.sinks import ChannelSink, Mark, ResponseUrlSink, find_marked, metadata, responder
from adapters.slack.translate import (
    message_from_command, notice, plain_text, question_header, question_message, search_results,
)
from adapters.slack.worker import KEY_PREFIX, Bridge, Kind
from bot.state.inbound import InboundEventRow

log = logging.getLogger(__name__)
Ack = Callable[..., Awaitable[Any]]

COMMAND = "/coach"
KB_COMMAND = "/coach-kb"
# Posting in a channel the bot is not in: answer privately instead of failing silently.
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
USAGE = "Ask me a question after the command, for example: `/coach how could my year 5s brainstorm together?`"
KB_USAGE = "Usage: `/coach-kb search <words>` shows how the knowledge base ranks entries for those words."
NOT_IN_CHANNEL = ("I can't post in this channel, so here is my answer just for you. "
                  "To answer in the channel, invite me with `/invite @coach`.")
# The fields of a slash command the worker needs (the rest, e.g. the verification token, is not stored).
COMMAND_FIELDS = ("command", "text", "team_id", "channel_id", "channel_name", "user_id", "trigger_id",
                  "response_url", "api_app_id")


def refusal(has_integrators: bool) -> str:
    """The polite no for someone who is not an integrator."""
    text = ("Sorry, that's one of the integrators' tools. If you'd like a hand with something, "
            "ask me with `/coach` or send me a direct message.")
    if not has_integrators:
        text += " (No integrators are set up yet: an admin lists their Slack member ids in `access.integrator.slack`.)"
    return text


def command_item(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The inbound key and row payload for a /coach question; None for anything else (or an empty one)."""
    if body.get("command") != COMMAND or not str(body.get("text") or "").strip() or not body.get("trigger_id"):
        return None
    key = (f"{KEY_PREFIX}cmd:{body.get('team_id', '')}:{body.get('channel_id', '')}:{body.get('user_id', '')}:"
           f"{body['trigger_id']}")
    return key, {"kind": Kind.COMMAND.value, "command": {f: body.get(f) for f in COMMAND_FIELDS}}


async def process_command(bridge: Bridge, key: str, row: InboundEventRow, client: AsyncWebClient) -> bool:
    """Answer one recorded /coach question (see the module docstring); False leaves it queued."""
    command: dict[str, Any] = row.payload["command"]
    question = str(command.get("text") or "").strip()
    user, channel = command["user_id"], command["channel_id"]
    respond = responder(command["response_url"], bridge.session)
    private_thread = f"slash-{command.get('trigger_id') or user}"
    if bridge.settings.slack.ephemeral_slash_replies:
        # Each private /coach question is its own conversation: there is no thread to continue in.
        return await bridge.answer(message_from_command(command, thread_id=private_thread),
                                   ResponseUrlSink(respond), key=key)
    shown = plain_text(question)  # Slack-encoded (&lt;, <url|label>) to what the teacher typed
    ts: str | None = None
    if row.attempts > 1:  # a process may have posted before it died: look before posting again
        found = await find_marked(client, channel, key)
        if found is not None and found.mark is Mark.ANSWER:
            log.info("inbound item %s was answered already (%s); recorded, not posted again", key, found.ts)
            await bridge.record_answer(key, found.ts)
            return True
        ts = found.ts if found is not None else None
    if ts is None:
        try:
            # The question goes up first so its message (and thread) is the conversation.
            posted = await client.chat_postMessage(channel=channel, metadata=metadata(key, Mark.QUESTION),
                                                   **question_message(user, shown).as_kwargs())
        except SlackApiError as exc:
            if exc.response.get("error") not in CANNOT_POST:
                raise
            header = [notice(NOT_IN_CHANNEL, "coach.not_in_channel").blocks[0]]
            return await bridge.answer(message_from_command(command, thread_id=private_thread),
                                       ResponseUrlSink(respond, header), key=key)
        ts = str(posted["ts"])
    return await bridge.answer(message_from_command(command, thread_id=ts),
                               ChannelSink(client, channel, None, message_ts=ts, header=question_header(user, shown),
                                           key=key), key=key)


def register(app: AsyncApp, bridge: Bridge) -> None:
    """The /coach and /coach-kb listeners."""
    settings = bridge.settings

    async def answer_command(ack: Ack, command: dict, context: dict, client: AsyncWebClient) -> None:
        if not (command.get("text") or "").strip():
            await ack(**notice(USAGE).as_kwargs())
            return
        await ack()
        key = context.get("inbound_key")
        if key:  # recorded before the ack (adapters.slack.events): answered once, from the queue
            await bridge.process(key, client)
        else:
            log.warning("a /coach command without a trigger_id was not recorded; not answered")

    app.command(COMMAND)(answer_command)

    async def kb_command(ack: Ack, command: dict, respond: Ack) -> None:
        # A read-only search answered privately: a repeat shows the same ranking again, so it is not queued.
        await ack()
        if not bridge.is_integrator(command.get("user_id")):
            await respond(response_type="ephemeral",
                          text=refusal(bool(settings.slack.integrator_user_ids or settings.access.integrator.slack)))
            return
        sub, _, rest = (command.get("text") or "").strip().partition(" ")
        if sub.lower() != "search" or not rest.strip():
            await respond(response_type="ephemeral", **notice(KB_USAGE).as_kwargs())
            return
        result = await bridge.run(bridge.coach.retriever.search, rest.strip(), k=5)
        hits = [(h.entry.id, h.entry.title, h.score) for h in result.hits]
        await respond(response_type="ephemeral", **search_results(rest.strip(), hits, result.confidence).as_kwargs())

    app.command(KB_COMMAND)(kb_command)
    bridge.handlers[Kind.COMMAND] = process_command
