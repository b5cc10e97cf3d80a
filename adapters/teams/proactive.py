"""Proactive Teams messages: announce a handoff in the integrators' channel, tell a teacher later.

Every inbound turn stores its conversation reference (see `references.py`) under:

- the conversation's memory key, `teams:<conversation>` or `teams:<channel>:<reply-chain id>`,
  which is `EscalationRow.memory_key`, so an escalation finds its way back to the teacher;
- `teams:<channel id>` for a new post in a channel (e.g. the integrators' channel); use
  `channel_key("19:...@thread.tacv2")`;
- `teams-user:<user id>` (and `teams-user:<aad object id>`) for one person; `send_to_user`
  opens a one-to-one chat when the only reference is a channel.

Usage from async code: `await notifier.send_text(key, text)`; from a worker thread:
`notifier.send_text_sync(key, text)`. Both return the new message's activity id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
)

from adapters.teams import cards, translate
from adapters.teams.auth import AUTHENTICATED, auth_mode, make_adapter
from adapters.teams.references import ReferenceStore
from bot.models import Reply

T = TypeVar("T")

log = logging.getLogger(__name__)

channel_key = translate.channel_key
conversation_key = translate.conversation_key
user_key = translate.user_key


class UnknownConversation(LookupError):
    """No reference is stored under the key: the bot has not yet seen a message there."""


class ProactiveError(RuntimeError):
    """The Bot Connector refused or failed a proactive send; the message says which key."""


class TeamsNotifier:
    """Sends messages into stored Teams conversations, outside any teacher's turn."""

    def __init__(self, adapter: BotAdapter, references: ReferenceStore, *, app_id: str | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`adapter` is the server's CloudAdapter (or a TestAdapter); `app_id` is MicrosoftAppId, None in emulator mode."""
        self.adapter = adapter
        self.references = references
        self.app_id = app_id or ""
        self.loop = loop

    @classmethod
    def from_settings(cls, settings: Any, db: Any) -> TeamsNotifier:
        """A notifier with its own CloudAdapter, for a process that does not serve /api/messages (an outbox worker)."""
        app_id = settings.teams.app_id if auth_mode(settings.teams) == AUTHENTICATED else None
        return cls(make_adapter(settings.teams), ReferenceStore(db), app_id=app_id)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop `send_text_sync` schedules onto (the server binds its own at start-up)."""
        self.loop = loop

    # -- async API ---------------------------------------------------------------------------

    async def send_text(self, key: str, text: str) -> str | None:
        """Post `text` (Markdown) into the conversation stored under `key`; returns the new activity id."""
        if not text or not text.strip():
            raise ValueError("TeamsNotifier.send_text(): text cannot be empty.")
        return await self.send_activity(key, Activity(type=ActivityTypes.message, text=text,
                                                      summary=cards.summary_of(text)))

    async def send_reply(self, key: str, reply: Reply) -> str | None:
        """Post a core Reply as an Adaptive Card into the conversation stored under `key`."""
        return await self.send_activity(key, cards.reply_activity(reply))

    async def send_activity(self, key: str, activity: Activity) -> str | None:
        """Post any activity into the conversation stored under `key` (a new message, not a reply)."""
        reference, _ = await self._reference(key)
        return await self._continue(reference, activity, key)

    async def send_to_user(self, user_id: str, text: str) -> str | None:
        """Message one person directly, opening a one-to-one chat if the only reference is a channel or group."""
        key = user_key(user_id)
        if not text or not text.strip():
            raise ValueError("TeamsNotifier.send_to_user(): text cannot be empty.")
        reference, data = await self._reference(key)
        message = Activity(type=ActivityTypes.message, text=text, summary=cards.summary_of(text))
        if reference.conversation is not None and reference.conversation.conversation_type == "personal":
            return await self._continue(reference, message, key)
        return await self._open_personal(reference, translate.reference_tenant(data), message, key)

    # -- sync API ----------------------------------------------------------------------------

    def send_text_sync(self, key: str, text: str, timeout: float = 30.0) -> str | None:
        """`send_text` for synchronous code (an outbox worker thread, an escalation listener)."""
        return self.run_sync(lambda: self.send_text(key, text), timeout, what=f"sending to {key!r}")

    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0, what: str = "a Teams call") -> T:
        """Run the coroutine `make()` gives from synchronous code and wait for its result.

        Scheduled onto the server's event loop when one is bound and running; otherwise run
        on a fresh loop. Not for use on the event loop's own thread (await the coroutine there).
        """
        loop = self.loop
        if loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                raise RuntimeError("TeamsNotifier.run_sync() called on the event loop; await the coroutine")
            future = asyncio.run_coroutine_threadsafe(make(), loop)
            try:
                return future.result(timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise ProactiveError(f"{what} took longer than {timeout:.0f}s") from None
        return asyncio.run(make())

    # -- parts -------------------------------------------------------------------------------

    async def _reference(self, key: str) -> tuple[ConversationReference, dict[str, Any]]:
        data = await asyncio.get_running_loop().run_in_executor(None, self.references.get, key)
        if data is None:
            raise UnknownConversation(f"no Teams conversation is stored under {key!r}: the bot must first be "
                                      "added there or receive a message there")
        return translate.reference_from_dict(data), data

    async def _continue(self, reference: ConversationReference, activity: Activity, key: str) -> str | None:
        result: dict[str, Any] = {}

        async def logic(turn_context: TurnContext) -> None:
            # Errors are carried out of the turn: the adapter's on_turn_error would otherwise swallow them.
            try:
                result["id"] = await _post_new(turn_context, reference, activity)
            except Exception as exc:
                result["error"] = exc

        await self.adapter.continue_conversation(reference, logic, self.app_id)
        return _outcome(result, key)

    async def _open_personal(self, reference: ConversationReference, tenant: str | None, message: Activity,
                             key: str) -> str | None:
        if reference.user is None or not reference.user.id:
            raise UnknownConversation(f"the reference under {key!r} names no person")
        parameters = ConversationParameters(
            is_group=False, bot=reference.bot, members=[ChannelAccount(id=reference.user.id)], tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}} if tenant else None,
        )
        result: dict[str, Any] = {}

        async def logic(turn_context: TurnContext) -> None:
            try:
                conversation = turn_context.activity.conversation
                personal = ConversationReference(
                    channel_id=reference.channel_id, service_url=reference.service_url, bot=reference.bot,
                    user=reference.user, locale=reference.locale,
                    conversation=ConversationAccount(id=conversation.id, conversation_type="personal", is_group=False),
                )
                result["id"] = await _post_new(turn_context, personal, message)
                result["reference"] = personal
            except Exception as exc:
                result["error"] = exc

        # CloudAdapter.create_conversation: POST /v3/conversations, then a turn in the new chat.
        await self.adapter.create_conversation(self.app_id, logic, parameters, reference.channel_id,
                                               reference.service_url)
        sent = _outcome(result, key)
        personal = result["reference"].serialize()
        if tenant:
            personal["conversation"]["tenantId"] = tenant
        # Next time, the one-to-one chat is used directly (and can be reached by its own key too).
        label = reference.user.name or ""
        chat_key = conversation_key(personal["conversation"]["id"])

        def remember() -> None:
            self.references.save(key, personal, kind="user", label=label)
            self.references.save(chat_key, personal, kind="conversation", label=label)

        await asyncio.get_running_loop().run_in_executor(None, remember)
        return sent


async def _post_new(turn_context: TurnContext, reference: ConversationReference, activity: Activity) -> str | None:
    """Send as a new message in the reference's conversation (not as a reply to an old activity id)."""
    outgoing = TurnContext.apply_conversation_reference(Activity().deserialize(activity.serialize()), reference)
    outgoing.reply_to_id = None
    connector = turn_context.turn_state.get(BotAdapter.BOT_CONNECTOR_CLIENT_KEY)
    if connector is None:  # an adapter without a connector (TestAdapter): its own send path
        response = await turn_context.send_activity(outgoing)
    else:
        response = await connector.conversations.send_to_conversation(reference.conversation.id, outgoing)
    return response.id if response is not None else None


def _outcome(result: dict[str, Any], key: str) -> str | None:
    error = result.get("error")
    if error is not None:
        log.warning("proactive send to %s failed: %s", key, type(error).__name__)
        raise ProactiveError(f"could not send to {key!r}: {error}") from error
    return result.get("id")

