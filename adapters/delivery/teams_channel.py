"""Handoffs in the integrators' Teams channel, and notices to teachers in Teams, sent proactively.

Both go through the Teams adapter's `TeamsNotifier` (adapters/teams/proactive.py), which posts
to the Bot Connector (`POST {serviceUrl}/v3/conversations/{id}/activities`) with a stored
conversation reference. The integrators' channel is `settings.teams_channel.conversation_id`;
its reference is stored when the bot is added to the channel, or built from
`settings.teams_channel.service_url` before that. Updates and status changes are replies in the
handoff's own thread. A teacher is reached under the conversation's memory key, which is the
key the Teams adapter stores every conversation's reference under.

The Bot Connector has no idempotency key and a bot cannot read a channel's history, so a
process killed after Teams accepted a post and before the outbox recorded it posts it again
on restart: at least once, never lost.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.teams.proactive import TeamsNotifier, UnknownConversation, channel_key, conversation_key
from adapters.teams.references import ReferenceStore
from bot.handoff_context import HandoffContext
from bot.outbox import DeliveryError, OutboxItem, TeacherNotice

log = logging.getLogger(__name__)


def _send(notifier: TeamsNotifier, key: str, text: str) -> str | None:
    try:
        return notifier.send_text_sync(key, text)
    except UnknownConversation as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    except Exception as exc:  # ProactiveError, HTTP, auth: worth another try later
        raise DeliveryError(f"Teams send failed: {type(exc).__name__}: {exc}") from None


class TeamsChannel:
    """The integrators' Teams channel."""

    name = "teams_channel"
    events = frozenset({"opened", "updated", "claimed", "resolved"})
    targets = frozenset({"integrator"})

    def __init__(self, notifier: TeamsNotifier, references: ReferenceStore, conversation_id: str, *,
                 service_url: str | None = None, bot_id: str | None = None) -> None:
        if not conversation_id:
            raise ValueError("TeamsChannel(): COACH_TEAMS_CHANNEL__CONVERSATION_ID is not set.")
        self.notifier = notifier
        self.references = references
        self.channel_id = conversation_id.split(";", 1)[0]
        self.service_url = service_url
        self.bot_id = bot_id

    def _channel_reference(self) -> dict[str, Any]:
        ref = self.references.get(channel_key(self.channel_id))
        if ref is None and self.service_url:
            # Configured, not yet seen: a reference is the service URL, the conversation and the bot.
            ref = {"channelId": "msteams", "serviceUrl": self.service_url,
                   "conversation": {"id": self.channel_id, "isGroup": True, "conversationType": "channel"},
                   "bot": {"id": self.bot_id or "bot"}}
            self.references.save(channel_key(self.channel_id), ref, kind="channel", label="integrators (configured)")
        if ref is None:
            raise DeliveryError(f"the bot has no reference for Teams channel {self.channel_id}: add the bot to the "
                                "channel, or set COACH_TEAMS_CHANNEL__SERVICE_URL")
        return ref

    def _thread_key(self, activity_id: str) -> str:
        # A reply chain in a channel is the conversation "<channel>;messageid=<root id>".
        thread = f"{self.channel_id};messageid={activity_id}"
        key = conversation_key(thread)
        if self.references.get(key) is None:
            base = self._channel_reference()
            ref = {**base, "conversation": {**(base.get("conversation") or {}), "id": thread}}
            self.references.save(key, ref, kind="conversation", label="handoff thread")
        return key

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        context = HandoffContext.from_dict(item.payload["context"])
        first = (item.first or {}).get("receipt") or {}
        if item.event == "opened":
            self._channel_reference()
            text = context.channel_text() + f"\n\nTo take it: `coach handoffs claim {context.ticket}` (the teacher is told)."
            return {"activity_id": _send(self.notifier, channel_key(self.channel_id), text)}
        if item.event == "updated":
            text = f"**{context.ticket}**: the teacher added: {context.new_detail or '(no text)'}"
        else:
            text = f"**{context.ticket}** {context.status_line or context.status}"
        if first.get("activity_id"):
            return {"activity_id": _send(self.notifier, self._thread_key(first["activity_id"]), text), "thread": True}
        if (item.first or {}).get("status") in ("pending", "sending"):
            raise DeliveryError("waiting for the handoff's first post")
        self._channel_reference()
        return {"activity_id": _send(self.notifier, channel_key(self.channel_id), text)}

    def probe(self) -> str:
        ref = self._channel_reference()
        return f"Teams channel {self.channel_id} via {ref.get('serviceUrl')}"


class TeamsTeacherNotifier:
    """Tells a Teams teacher, in the conversation the escalation came from."""

    platform = "teams"

    def __init__(self, notifier: TeamsNotifier, references: ReferenceStore) -> None:
        self.notifier = notifier
        self.references = references

    def notify_teacher(self, notice: TeacherNotice) -> dict[str, Any]:
        key = notice.memory_key
        if not key:
            raise DeliveryError(f"{notice.ticket}: no Teams conversation recorded for the teacher", permanent=True)
        reference = notice.platform_ref.get("reference")
        if self.references.get(key) is None and isinstance(reference, dict):
            self.references.save(key, reference, kind="conversation")  # the escalation kept its own copy
        return {"activity_id": _send(self.notifier, key, notice.text)}

    def probe(self) -> str:
        return "Teams proactive messages through the Bot Connector"
