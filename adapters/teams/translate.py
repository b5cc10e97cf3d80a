"""Pure translation between Bot Framework activities and the core's models.

Activity -> InboundMessage / ActionEvent (a Reply as an Adaptive Card is adapters/teams/cards.py). No network,
no state, no routing: every function here is a plain function of its arguments, so it is
tested without a server.
"""

from __future__ import annotations

import copy
import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ConversationReference,
)

from adapters.teams import PLATFORM
from bot.models import Action, ActionEvent, InboundMessage, PlatformRef

THREAD_MARK = ";messageid="
USER_KEY_PREFIX = "teams-user:"

_AT_TAG = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_MAX_ID = 200


class ActivityError(ValueError):
    """An activity the adapter cannot translate; the message says which field is wrong."""


# -- conversation ids ----------------------------------------------------------------------


def split_conversation_id(conversation_id: str) -> tuple[str, str | None]:
    """`19:x@thread.tacv2;messageid=17` -> (`19:x@thread.tacv2`, `17`); other ids have no thread."""
    if THREAD_MARK in conversation_id:
        base, thread = conversation_id.split(THREAD_MARK, 1)
        return base, (thread or None)
    return conversation_id, None


def conversation_key(conversation_id: str) -> str:
    """The key a conversation (a reply chain in channels) is stored under: the same as its memory key."""
    base, thread = split_conversation_id(conversation_id)
    return f"{PLATFORM}:{base}:{thread}" if thread else f"{PLATFORM}:{base}"


def channel_key(channel_id: str) -> str:
    """The key for posting a new message in a channel (not inside a reply chain)."""
    return f"{PLATFORM}:{split_conversation_id(channel_id)[0]}"


def user_key(user_id: str) -> str:
    """The key for reaching one person (their Teams user id, `29:...`, or AAD object id)."""
    return f"{USER_KEY_PREFIX}{user_id}"


# -- validating raw JSON -------------------------------------------------------------------


def activity_problem(body: Any) -> str | None:
    """Why a POSTed body is not an activity we can answer, or None when it is.

    Checked before the SDK sees the body, so a malformed request gets a 400 with a reason
    instead of a stack trace and a 500.
    """
    if not isinstance(body, dict):
        return "the body must be a JSON object (a Bot Framework activity)"
    kind = body.get("type")
    if not isinstance(kind, str) or not kind.strip():
        return "the activity has no 'type'"
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("http://", "https://")):
        return "the activity has no 'serviceUrl' (an http(s) URL to answer on)"
    conversation = body.get("conversation")
    if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), str) \
            or not conversation["id"]:
        return "the activity has no 'conversation.id'"
    if not isinstance(body.get("channelId"), str) or not body["channelId"]:
        return "the activity has no 'channelId'"
    for party in ("from", "recipient"):
        value = body.get(party)
        if value is not None and (not isinstance(value, dict) or not isinstance(value.get("id"), str)):
            return f"'{party}' must be an object with an 'id'"
    if kind == ActivityTypes.message and not isinstance(body.get("from"), dict):
        return "a message activity needs 'from'"
    for name in ("text", "id", "replyToId", "name"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"'{name}' must be a string"
    for name in ("entities", "attachments", "membersAdded", "membersRemoved"):
        if body.get(name) is not None and not isinstance(body[name], list):
            return f"'{name}' must be a list"
    try:
        Activity().deserialize(body)
    except Exception as exc:  # msrest says which field; keep its words
        return f"the activity does not deserialize: {exc}"
    return None


# -- activity -> core ----------------------------------------------------------------------


def is_direct(activity: Activity) -> bool:
    """Personal chat (or the Emulator's one-to-one chat); channels and group chats are not."""
    conversation = activity.conversation
    if conversation is None:
        return True
    if conversation.conversation_type in ("channel", "groupChat"):
        return False
    return not conversation.is_group


def message_text(activity: Activity) -> str:
    """The teacher's words: the bot's own @mention removed, other mentions kept as names.

    Read from the mention entities rather than `TurnContext.remove_recipient_mention`: that
    helper deletes the bot's *name* wherever it occurs ("<at>Coach</at> Coach Lee said..."
    would lose "Coach" twice) and fails on a mention entity without `mentioned`.
    """
    text = activity.text or ""
    recipient = activity.recipient.id if activity.recipient is not None else None
    if recipient:
        for mention in _mentions_of(activity, recipient):
            text = text.replace(mention, " ", 1)
    text = _AT_TAG.sub(r"\1", text)  # colleagues' mentions stay, as plain names
    text = html.unescape(text).replace("\xa0", " ")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _mentions_of(activity: Activity, recipient_id: str) -> list[str]:
    found: list[str] = []
    for entity in activity.entities or []:
        if (entity.type or "").lower() != "mention":
            continue
        props = entity.additional_properties or {}
        mentioned = props.get("mentioned") or {}
        if isinstance(mentioned, dict) and mentioned.get("id") == recipient_id and isinstance(props.get("text"), str):
            found.append(props["text"])
    return found


def tenant_of(activity: Activity) -> str | None:
    """The Azure AD tenant of an activity (Teams puts it in conversation.tenantId and channelData.tenant)."""
    conversation = activity.conversation
    if conversation is not None:
        # botbuilder-schema maps tenant_id to "tenantID"; Teams spells it "tenantId".
        extra = conversation.additional_properties or {}
        tenant = conversation.tenant_id or extra.get("tenantId")
        if isinstance(tenant, str) and tenant:
            return tenant
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = (data.get("tenant") or {}).get("id") if isinstance(data.get("tenant"), dict) else None
    return tenant if isinstance(tenant, str) and tenant else None


def reference_dict(activity: Activity) -> dict[str, Any]:
    """The conversation reference of an activity as plain JSON (what the proactive side stores)."""
    reference = TurnContext.get_conversation_reference(activity).serialize()
    tenant = tenant_of(activity)
    if tenant and isinstance(reference.get("conversation"), dict):
        reference["conversation"]["tenantId"] = tenant  # needed to open a one-to-one chat later
    return reference


def reference_tenant(reference: dict[str, Any]) -> str | None:
    """The tenant stored with a reference, if any."""
    conversation = reference.get("conversation") or {}
    tenant = conversation.get("tenantId") or conversation.get("tenantID")
    return tenant if isinstance(tenant, str) and tenant else None


def _require_ids(activity: Activity) -> tuple[str, str]:
    if activity.conversation is None or not activity.conversation.id:
        raise ActivityError("the activity has no conversation.id")
    if activity.from_property is None or not activity.from_property.id:
        raise ActivityError("the activity has no from.id")
    return activity.conversation.id, activity.from_property.id


def _platform_ref(activity: Activity) -> PlatformRef:
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    channel = raw if isinstance(raw := channel_data.get("channel"), dict) else {}
    return PlatformRef(channel=channel.get("id"), service_url=activity.service_url,
                       reference=reference_dict(activity))


def to_inbound(activity: Activity) -> InboundMessage:
    """A message activity as the core's InboundMessage; the reply chain is the thread."""
    conversation_id, user_id = _require_ids(activity)
    base, thread = split_conversation_id(conversation_id)
    received = activity.timestamp or datetime.now(timezone.utc)
    if received.tzinfo is None:
        received = received.replace(tzinfo=timezone.utc)
    return InboundMessage(
        platform=PLATFORM, conversation_id=base, thread_id=thread, user_id=user_id,
        user_name=activity.from_property.name, text=message_text(activity), is_direct=is_direct(activity),
        message_id=activity.id, received_at=received, platform_ref=_platform_ref(activity),
    )


def action_data(activity: Activity) -> dict[str, Any] | None:
    """The data of a card button: `value` of an Action.Submit message, or `value.action.data` of an invoke."""
    value = activity.value
    if not isinstance(value, dict):
        return None
    if activity.type == ActivityTypes.invoke:
        action = value.get("action")
        data = action.get("data") if isinstance(action, dict) else None
        return data if isinstance(data, dict) else None
    return value


def is_card_action(activity: Activity) -> bool:
    """A click on one of our cards' buttons (whether or not its data turns out to be valid)."""
    data = action_data(activity)
    return data is not None and "action" in data and "turn_id" in data


def to_action_event(activity: Activity) -> ActionEvent | None:
    """A button click as an ActionEvent, or None when the data is not one of ours."""
    data = action_data(activity)
    if data is None:
        return None
    try:
        action = Action(data.get("action"))
    except ValueError:
        return None
    turn_id = data.get("turn_id")
    if not isinstance(turn_id, str) or not turn_id or len(turn_id) > _MAX_ID:
        return None
    source_id = data.get("source_id")
    if source_id is not None and (not isinstance(source_id, str) or len(source_id) > _MAX_ID):
        return None
    conversation_id, user_id = _require_ids(activity)
    base, thread = split_conversation_id(conversation_id)
    return ActionEvent(platform=PLATFORM, conversation_id=base, thread_id=thread, user_id=user_id,
                       turn_id=turn_id, action=action, source_id=source_id or None,
                       platform_ref=_platform_ref(activity), user_tz=client_zone(activity))


def client_zone(activity: Activity) -> str | None:
    """The teacher's IANA zone: Teams sends it as `localTimezone` and in the clientInfo entity; check-ins use it."""
    zone = getattr(activity, "local_timezone", None)
    if isinstance(zone, str) and zone:
        return zone
    for entity in activity.entities or []:
        props = getattr(entity, "additional_properties", None) or {}
        if getattr(entity, "type", None) == "clientInfo" and isinstance(props.get("timezone"), str):
            return props["timezone"] or None
    return None


def bot_was_added(activity: Activity) -> bool:
    """A conversationUpdate that adds the bot itself (installed in a chat, team or personal scope)."""
    if activity.type != ActivityTypes.conversation_update or activity.recipient is None:
        return False
    return any(m is not None and m.id == activity.recipient.id for m in activity.members_added or [])


@dataclass(frozen=True)
class StoredReference:
    """One conversation reference to keep, and under which key."""

    key: str
    kind: str  # "conversation" (a chat or reply chain), "channel" (new posts), "user" (a person)
    reference: dict[str, Any]
    label: str = ""


def reference_entries(activity: Activity) -> list[StoredReference]:
    """Every key under which this activity's conversation can be reached later.

    The conversation itself (its memory key, so an escalation's memory_key finds it), the
    channel for new posts when this is a reply chain, and the person who wrote.
    """
    if activity.conversation is None or not activity.conversation.id:
        return []
    reference = reference_dict(activity)
    conversation_id = activity.conversation.id
    label = _label(activity)
    entries = [StoredReference(conversation_key(conversation_id), "conversation", reference, label)]
    base, thread = split_conversation_id(conversation_id)
    if thread or activity.conversation.conversation_type == "channel":
        channel_ref = copy.deepcopy(reference)
        channel_ref["conversation"]["id"] = base
        channel_ref.pop("activityId", None)
        entries.append(StoredReference(channel_key(base), "channel", channel_ref, label))
    sender = activity.from_property
    if sender is not None and sender.id and activity.type == ActivityTypes.message:
        entries.append(StoredReference(user_key(sender.id), "user", reference, sender.name or ""))
        if sender.aad_object_id:
            entries.append(StoredReference(user_key(sender.aad_object_id), "user", reference, sender.name or ""))
    return entries


def _label(activity: Activity) -> str:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = (data.get("team") or {}).get("name") if isinstance(data.get("team"), dict) else None
    channel = (data.get("channel") or {}).get("name") if isinstance(data.get("channel"), dict) else None
    parts = [p for p in (team, channel, activity.conversation.name) if p]
    return " / ".join(parts) or (activity.conversation.conversation_type or "")


def reference_from_dict(data: dict[str, Any]) -> ConversationReference:
    """A stored reference back as the SDK's ConversationReference."""
    return ConversationReference().deserialize(data)


def welcome_text(integrator_name: str) -> str:
    """What the coach says when it is added to a chat, a team or a personal app."""
    return (
        "Hi, I'm the Integration Coach. Ask me about using technology for learning: planning a "
        "lesson, choosing (or not choosing) a tool, checking understanding. I'll ask a question or "
        "two and point you to something our integrators have curated.\n\n"
        "Broken equipment or a lost password? Tell me and I'll open a helpdesk ticket. "
        f"Anything sensitive, or when you'd rather talk it through, I'll pass it to {integrator_name}.\n\n"
        "In a channel, @mention me; in a chat with me, just type."
    )
