"""Where an answer goes (a channel message, or a slash command's response_url), and how a posted
answer is found again.

Every message the coach posts for an inbound-queue item carries that item's key in Slack message
metadata (`event_payload.inbound`). A process killed between posting and writing down the posted
ts leaves the item unfinished; before posting again, the sweeper looks for a message carrying the
key near where the answer went (`find_marked`): an answer found is recorded, not posted twice, and
a question or thinking indicator found is updated instead of a new one being posted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import ClientSession
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.translate import SlackMessage, thinking_message

log = logging.getLogger(__name__)

# How many messages the sweeper reads back when looking for one it may have posted already.
LOOKBACK_MESSAGES = 100
Respond = Callable[..., Awaitable[Any]]


class Mark(StrEnum):
    """The `event_type` of the metadata on a message posted for an inbound-queue item."""

    QUESTION = "coach_question"  # a /coach question posted in the channel, to be updated with the answer
    THINKING = "coach_thinking"  # the indicator, to be updated with the answer
    ANSWER = "coach_answer"      # the answer itself: the item is answered


def metadata(key: str, mark: Mark) -> dict[str, Any]:
    """Slack message metadata naming the inbound item a message belongs to."""
    return {"event_type": mark.value, "event_payload": {"inbound": key}}


@dataclass(frozen=True)
class Marked:
    """A message found carrying an inbound key."""

    ts: str
    mark: Mark


async def find_marked(client: AsyncWebClient, channel: str, key: str, *, thread_ts: str | None = None,
                      oldest: str | None = None) -> Marked | None:
    """The latest message in `channel` (or in the thread `thread_ts`) carrying `key`, if any.

    Reads at most LOOKBACK_MESSAGES, from `oldest` on when known. A lookup Slack refuses finds
    nothing, and the answer is then posted, since losing it is worse: the manifest's im:history
    covers direct messages; in channels the lookup needs channels:history / groups:history,
    which the manifest does not ask for (Slack answers missing_scope there).
    """
    try:
        if thread_ts:
            resp = await client.conversations_replies(channel=channel, ts=thread_ts, oldest=oldest,
                                                      limit=LOOKBACK_MESSAGES, include_all_metadata=True)
        else:
            resp = await client.conversations_history(channel=channel, oldest=oldest, limit=LOOKBACK_MESSAGES,
                                                      include_all_metadata=True)
    except SlackApiError as exc:
        log.warning("cannot read back %s for an earlier answer (%s); answering anyway",
                    channel, exc.response.get("error"))
        return None
    found: list[Marked] = []
    for message in resp.get("messages") or []:
        meta = message.get("metadata") or {}
        if (meta.get("event_payload") or {}).get("inbound") != key:
            continue
        try:
            found.append(Marked(str(message["ts"]), Mark(str(meta.get("event_type")))))
        except (KeyError, ValueError):
            continue
    # An answer wins over an indicator; otherwise the newest message.
    found.sort(key=lambda m: (m.mark is Mark.ANSWER, float(m.ts)))
    return found[-1] if found else None


class Sink(Protocol):
    """Where an answer goes: a channel or thread (chat.postMessage/update) or a response_url."""

    header: list[dict[str, Any]]

    async def thinking(self) -> None: ...

    async def final(self, message: SlackMessage) -> None: ...


class ChannelSink:
    """Post into a channel or thread; if a message already stands for this answer, update it instead.

    With `key`, every post and update carries it in message metadata (see `find_marked`).
    """

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str | None, *,
                 message_ts: str | None = None, header: Sequence[dict[str, Any]] = (),
                 key: str | None = None) -> None:
        self.client, self.channel, self.thread_ts, self.message_ts = client, channel, thread_ts, message_ts
        self.header = list(header)
        self.key = key

    async def _send(self, message: SlackMessage, mark: Mark) -> None:
        extra: dict[str, Any] = {"metadata": metadata(self.key, mark)} if self.key else {}
        if self.message_ts:
            try:
                await self.client.chat_update(channel=self.channel, ts=self.message_ts, **message.as_kwargs(),
                                              **extra)
                return
            except SlackApiError as exc:
                # Someone deleted the indicator (or question) meanwhile: the answer still goes out.
                if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
                    raise
                self.message_ts = None
        if not self.message_ts:
            resp = await self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts,
                                                      **message.as_kwargs(), **extra)
            self.message_ts = resp.get("ts")

    async def thinking(self) -> None:
        await self._send(thinking_message(self.header), Mark.THINKING)

    async def final(self, message: SlackMessage) -> None:
        await self._send(message, Mark.ANSWER)


class ResponseUrlSink:
    """Answer through a slash command's response_url, privately (ephemeral)."""

    def __init__(self, respond: Respond, header: Sequence[dict[str, Any]] = ()) -> None:
        self.respond = respond
        self.header = list(header)
        self.posted = False

    async def thinking(self) -> None:
        await self.respond(response_type="ephemeral", **thinking_message(self.header).as_kwargs())
        self.posted = True

    async def final(self, message: SlackMessage) -> None:
        await self.respond(response_type="ephemeral", replace_original=self.posted, **message.as_kwargs())


def responder(url: str, session: ClientSession | None = None) -> Respond:
    """`respond()` for a stored response_url, usable from any process (Bolt's needs the live request)."""
    hook = AsyncWebhookClient(url, session=session)

    async def respond(**kwargs: Any) -> Any:
        resp = await hook.send(**kwargs)
        if resp.status_code >= 400:
            log.warning("response_url answered %s", resp.status_code)
        return resp

    return respond
