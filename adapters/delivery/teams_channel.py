"""Handoffs in the integrators' Teams channel, and notices to teachers in Teams, sent proactively.

Both go through the Teams adapter's `TeamsNotifier` (adapters/teams/proactive.py), which posts
to the Bot Connector (`POST {serviceUrl}/v3/conversations/{id}/activities`) with a stored
conversation reference. The integrators' channel is `settings.teams_channel.conversation_id`;
its reference is stored when the bot is added to the channel, or built from
`settings.teams_channel.service_url` before that. A teacher is reached under the
conversation's memory key, which is the key the Teams adapter stores every conversation's
reference under.

`opened` posts an Adaptive Card with Claim and Resolve buttons (Action.Submit, data
`{"action": "handoff_claim" | "handoff_resolve", "escalation_id": "<id>"}`, the Slack channel's
action ids and value; adapters/teams/bot.py handles the clicks through `Coach.escalation_action`).
While it can be resolved the card has an optional multi-line note (Input.Text `resolution_note`):
Teams merges its value into Resolve's data; Claim sends no inputs.
`updated` replies in the post's thread; `claimed` and `resolved` redraw the card in place
(`PUT .../activities/{id}`, fewer buttons), so a claim from `coach handoffs claim` shows there
too. When the card cannot be updated (deleted, say) the status is a reply in its thread instead.

The Bot Connector has no idempotency key and a bot cannot read a channel's history, so a
process killed after Teams accepted a post and before the outbox recorded it posts it again
on restart: at least once, never lost.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes

from adapters.teams import cards, translate
from adapters.teams.proactive import TeamsNotifier, UnknownConversation, channel_key, conversation_key
from adapters.teams.references import ReferenceStore
from bot.handoff.context import HandoffContext
from bot.handoff.delivery import DeliveryError, OutboxItem, TeacherNotice
from bot.handoff.escalations import ACTIVE, EscalationStatus

log = logging.getLogger(__name__)

# The Slack channel's action ids, so both platforms' clicks read the same in logs and in the core.
CLAIM, RESOLVE = "handoff_claim", "handoff_resolve"
HANDOFF_ACTIONS = {CLAIM: "claim", RESOLVE: "resolve"}
NOTE_INPUT = "resolution_note"
# Teams caps what Input.Text accepts; the core cuts a longer note anyway.
NOTE_MAX_LENGTH = 4000
# A card that is gone or not ours cannot be redrawn: say it in the thread instead of retrying.
CANNOT_UPDATE = frozenset({400, 403, 404})


# -- the card ------------------------------------------------------------------------------------


def handoff_card(text: str, escalation_id: int, status: str) -> dict[str, Any]:
    """The channel post as an Adaptive Card: `text` line by line, then the buttons `status` still allows.

    open: Claim and Resolve; claimed: Resolve; resolved: none. The bot redraws with the text
    `Coach.escalation_action` returns, the outbox with the context it recorded: the same card.
    """
    # One TextBlock per line: Teams clients differ in whether a single "\n" breaks a TextBlock's line.
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": line, "wrap": True}
                                  for line in text.splitlines() if line.strip()]
    if body:
        body[0]["id"] = "handoff-title"
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": cards.CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    buttons: list[dict[str, Any]] = []
    if status == EscalationStatus.OPEN:
        buttons.append({"type": "Action.Submit", "title": "Claim", "style": "positive", "associatedInputs": "none",
                        "data": {"action": CLAIM, "escalation_id": str(escalation_id)}})
    if status in ACTIVE:
        body.append({"type": "Input.Text", "id": NOTE_INPUT, "isMultiline": True, "maxLength": NOTE_MAX_LENGTH,
                     "label": "Resolution note (optional)",
                     "placeholder": "What you answered: it becomes the start of a knowledge-base draft"})
        buttons.append({"type": "Action.Submit", "title": "Resolve", "associatedInputs": "auto",
                        "data": {"action": RESOLVE, "escalation_id": str(escalation_id)}})
    if buttons:
        card["actions"] = buttons
    return card


class HandoffClick(NamedTuple):
    """A Claim or Resolve on a handoff card: which escalation, which action, and Resolve's note."""

    escalation_id: int
    kind: str  # "claim" or "resolve"
    note: str | None = None


def handoff_click(value: Any) -> HandoffClick | None:
    """An Action.Submit `value` from a handoff card as a `HandoffClick`, else None (not one of ours)."""
    if not isinstance(value, dict):
        return None
    action = value.get("action")
    kind = HANDOFF_ACTIONS.get(action) if isinstance(action, str) else None
    raw = value.get("escalation_id")
    if kind is None or not isinstance(raw, (str, int)) or isinstance(raw, bool):
        return None
    try:
        escalation_id = int(raw)
    except ValueError:
        return None
    if escalation_id <= 0:
        return None
    note = value.get(NOTE_INPUT) if kind == "resolve" else None
    return HandoffClick(escalation_id, kind, note if isinstance(note, str) and note.strip() else None)


def card_message(card: dict[str, Any], text: str) -> Activity:
    """A new channel post carrying the card; `text` is its one-line heading and notification summary."""
    return Activity(type=ActivityTypes.message, text=text, summary=cards.summary_of(text),
                    attachments=[cards.card_attachment(card)])


# -- sending ---------------------------------------------------------------------------------------


def _http_status(exc: BaseException) -> int | None:
    # msrest's ErrorResponseException carries the HTTP response (requests' or aiohttp's).
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return status if isinstance(status, int) else None


async def _update_card(notifier: TeamsNotifier, reference: dict[str, Any], activity_id: str,
                       card: dict[str, Any]) -> None:
    """Replace the card posted as `activity_id` in the reference's conversation."""
    result: dict[str, BaseException] = {}

    async def logic(turn_context: TurnContext) -> None:
        # Carried out of the turn: the adapter's on_turn_error would otherwise swallow it.
        try:
            await turn_context.update_activity(cards.card_update_activity(card, activity_id))
        except Exception as exc:
            result["error"] = exc

    await notifier.adapter.continue_conversation(translate.reference_from_dict(reference), logic, notifier.app_id)
    if "error" in result:
        raise result["error"]


def _send(notifier: TeamsNotifier, key: str, text: str) -> str | None:
    try:
        return notifier.send_text_sync(key, text)
    except UnknownConversation as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    except Exception as exc:  # ProactiveError, HTTP, auth: worth another try later
        raise DeliveryError(f"Teams send failed: {type(exc).__name__}: {exc}") from None


def _send_card(notifier: TeamsNotifier, key: str, card: dict[str, Any], text: str) -> str | None:
    try:
        return notifier.run_sync(lambda: notifier.send_activity(key, card_message(card, text)))
    except UnknownConversation as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    except DeliveryError:
        raise
    except Exception as exc:  # ProactiveError, HTTP, auth: worth another try later
        raise DeliveryError(f"Teams send failed: {type(exc).__name__}: {exc}") from None


class TeamsChannel:
    """The integrators' Teams channel."""

    name = "teams_channel"
    events = frozenset({"opened", "updated", "claimed", "resolved"})
    targets = frozenset({"integrator"})
    # The safeguarding lead's private conversation carries the whole account, transcript included.
    with_transcript = False

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
            if context.notice_only:  # a safeguarding concern: the lead acts on it, not this channel
                text = context.channel_text()
            elif self.with_transcript and context.transcript:
                text += "\n\nTranscript:\n" + "\n".join(f"{s}: {t}" for s, t in context.transcript)
            card = handoff_card(text, context.escalation_id, "notice" if context.notice_only else EscalationStatus.OPEN)
            # The receipt's activity_id is what claimed/resolved redraw, and what updates thread under.
            return {"activity_id": _send_card(self.notifier, channel_key(self.channel_id), card, context.subject())}
        if item.event == "updated":
            text = f"**{context.ticket}**: the teacher added: {context.new_detail or '(no text)'}"
        else:
            text = f"**{context.ticket}** {context.status_line or context.status}"
            if first.get("activity_id"):
                redrawn = self._redraw(first["activity_id"], context)
                if redrawn is not None:
                    return redrawn
        if first.get("activity_id"):
            return {"activity_id": _send(self.notifier, self._thread_key(first["activity_id"]), text), "thread": True}
        if (item.first or {}).get("status") in ("pending", "sending"):
            raise DeliveryError("waiting for the handoff's first post")
        self._channel_reference()
        return {"activity_id": _send(self.notifier, channel_key(self.channel_id), text)}

    def _redraw(self, activity_id: str, context: HandoffContext) -> dict[str, Any] | None:
        """Update the posted card to the context's status; None when Teams says it cannot be updated."""
        card = handoff_card(context.channel_text(), context.escalation_id,
                            "notice" if context.notice_only else context.status)
        # The root post lives in the channel itself (not "<channel>;messageid=..."): update it there.
        reference = self._channel_reference()
        try:
            self.notifier.run_sync(lambda: _update_card(self.notifier, reference, activity_id, card))
        except DeliveryError:
            raise
        except Exception as exc:
            status = _http_status(exc)
            if status in CANNOT_UPDATE:
                log.info("%s: the card %s cannot be updated (HTTP %s); replying in its thread", context.ticket,
                         activity_id, status)
                return None
            raise DeliveryError(f"Teams update failed: {type(exc).__name__}: {exc}",
                                retry_after=30.0 if status == 429 else None) from None
        # Redrawing twice draws the same card, so a retried delivery changes nothing.
        return {"activity_id": activity_id, "updated": True}

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
