"""Handoffs in the integrators' Slack channel, and notices to teachers in Slack.

`opened` posts a message with Claim and Resolve buttons (action_id `handoff_claim` /
`handoff_resolve`, value = the escalation id; adapters/slack/actions.py handles the clicks through
`Coach.escalation_action`). `updated` replies in that message's thread; `claimed` and
`resolved` redraw it (fewer buttons), so a claim from `coach handoffs claim` shows there too.

Slack has no idempotency key for chat.postMessage. Every post carries message metadata with
the outbox key, and a retry first looks for it in the channel's recent history
(conversations.history / conversations.replies, scope channels:history), so a process killed
after Slack accepted the post does not post it twice. Without that scope the retry posts
again: at least once, never lost.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.slack.translate import SECTION_LIMIT, TEXT_LIMIT, is_slack_ts, mrkdwn
from bot.handoff.context import HandoffContext
from bot.handoff.delivery import DeliveryError, OutboxItem, TeacherNotice
from bot.handoff.escalations import ACTIVE, EscalationStatus

log = logging.getLogger(__name__)

METADATA_EVENT = "coach_handoff"
CLAIM, RESOLVE = "handoff_claim", "handoff_resolve"
ACTIONS_BLOCK = "coach.handoff.actions"
PERMANENT = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "channel_not_found", "not_in_channel", "is_archived", "missing_scope", "invalid_blocks", "msg_too_long",
    "restricted_action", "ekm_access_denied", "team_access_not_granted", "invalid_arguments",
})


def _client(token: str, api_url: str, client: WebClient | None) -> WebClient:
    return client or WebClient(token=token, base_url=api_url if api_url.endswith("/") else api_url + "/", timeout=15)


def _call(fn: Any, **kwargs: Any) -> dict[str, Any]:
    """One Web API call, its failures sorted into retry-later and needs-a-person."""
    try:
        resp = fn(**kwargs)
        return dict(resp.data) if isinstance(resp.data, dict) else {}
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "unknown_error")
        retry_after = None
        if error == "ratelimited" or exc.response.status_code == 429:
            retry_after = float(exc.response.headers.get("Retry-After", 30) or 30)
        raise DeliveryError(f"Slack {getattr(fn, '__name__', 'call')}: {error}", permanent=error in PERMANENT,
                            retry_after=retry_after) from None
    except (SlackClientError, OSError) as exc:  # network trouble (URLError is an OSError)
        raise DeliveryError(f"Slack unreachable: {type(exc).__name__}: {exc}") from None


def _metadata(item: OutboxItem) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT, "event_payload": {"key": item.key, "ticket": item.ticket, "event": item.event}}


class SlackChannel:
    """The integrators' channel (settings.slack.integrator_channel)."""

    name = "slack_channel"
    events = frozenset({"opened", "updated", "claimed", "resolved"})
    targets = frozenset({"integrator"})

    def __init__(self, token: str, channel: str, *, api_url: str = "https://slack.com/api/",
                 client: WebClient | None = None) -> None:
        if not token or not channel:
            raise ValueError("SlackChannel(): needs SLACK_BOT_TOKEN and COACH_SLACK__INTEGRATOR_CHANNEL.")
        self.channel = channel
        self.client = _client(token, api_url, client)

    # -- rendering ---------------------------------------------------------------------------

    def blocks(self, context: HandoffContext, status: str) -> list[dict[str, Any]]:
        """Block Kit for the channel message: the context first (the section a click redraws), then buttons."""
        blocks: list[dict[str, Any]] = [
            {"type": "section", "block_id": "coach.handoff.context",
             "text": {"type": "mrkdwn", "text": mrkdwn(context.channel_text())[:SECTION_LIMIT]}},
        ]
        if context.transcript:
            lines = [f"*{s}:* {mrkdwn(t)}" for s, t in context.transcript[-8:]]
            head = "Transcript" + (" (names, e-mails, phones, addresses, student numbers and classes masked)" if context.masked else "")
            blocks.append({"type": "section", "block_id": "coach.handoff.transcript",
                           "text": {"type": "mrkdwn", "text": (f"_{head}_\n" + "\n".join(lines))[:SECTION_LIMIT]}})
        if not context.notice_only:
            blocks.append({"type": "context", "block_id": "coach.handoff.meta", "elements": [{"type": "mrkdwn", "text": mrkdwn(
                f"Why: {context.why} · Teacher: {context.teacher} · Opened {context.created_at}")[:3000]}]})
        buttons = []
        if context.notice_only:
            status = "notice"  # the safeguarding lead acts on it, from their own copy
        if status == EscalationStatus.OPEN:
            buttons.append({"type": "button", "action_id": CLAIM, "style": "primary", "value": str(context.escalation_id),
                            "text": {"type": "plain_text", "text": "Claim"}})
        if status in ACTIVE:
            buttons.append({"type": "button", "action_id": RESOLVE, "value": str(context.escalation_id),
                            "text": {"type": "plain_text", "text": "Resolve"}})
        if buttons:
            blocks.append({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": buttons})
        return blocks

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        context = HandoffContext.from_dict(item.payload["context"])
        first = (item.first or {}).get("receipt") or {}
        if item.event == "opened":
            return self._post(item, text=context.subject()[:TEXT_LIMIT], blocks=self.blocks(context, EscalationStatus.OPEN))
        if not first.get("ts"):
            if (item.first or {}).get("status") in ("pending", "sending"):
                raise DeliveryError("waiting for the handoff's first message to be posted")
            # The first message never made it (failed for good): say it at the top level instead.
            return self._post(item, text=mrkdwn(f"{context.ticket} {item.event}: " + (context.new_detail or
                              context.status_line or context.title))[:TEXT_LIMIT])
        if item.event == "updated":
            return self._post(item, thread_ts=first["ts"],
                              text=mrkdwn(f"The teacher added: {context.new_detail or '(no text)'}")[:TEXT_LIMIT])
        # claimed / resolved: redraw the original message; doing it twice changes nothing.
        data = _call(self.client.chat_update, channel=first.get("channel") or self.channel, ts=first["ts"],
                     text=context.subject()[:TEXT_LIMIT], blocks=self.blocks(context, context.status))
        return {"channel": data.get("channel"), "ts": data.get("ts"), "updated": True}

    def _post(self, item: OutboxItem, *, text: str, blocks: list[dict[str, Any]] | None = None,
              thread_ts: str | None = None) -> dict[str, Any]:
        if item.attempt > 1:
            found = self._already_posted(item, thread_ts)
            if found:
                log.info("%s %s was already in Slack (ts %s); not posting again", item.ticket, item.event, found)
                return {"channel": self.channel, "ts": found, "found": True}
        kwargs: dict[str, Any] = dict(channel=self.channel, text=text, metadata=_metadata(item),
                                      unfurl_links=False, unfurl_media=False)
        if blocks:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        data = _call(self.client.chat_postMessage, **kwargs)
        return {"channel": data.get("channel") or self.channel, "ts": data.get("ts")}

    def _already_posted(self, item: OutboxItem, thread_ts: str | None) -> str | None:
        oldest = f"{(item.created_at - timedelta(minutes=5)).timestamp():.6f}"
        try:
            if thread_ts:
                data = _call(self.client.conversations_replies, channel=self.channel, ts=thread_ts, oldest=oldest,
                             include_all_metadata=True, limit=200)
            else:
                data = _call(self.client.conversations_history, channel=self.channel, oldest=oldest,
                             include_all_metadata=True, limit=200)
        except DeliveryError as exc:  # no channels:history scope, say: post again (at least once)
            log.info("cannot check Slack history before re-posting (%s)", exc)
            return None
        for message in data.get("messages") or []:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == METADATA_EVENT and (meta.get("event_payload") or {}).get("key") == item.key:
                return message.get("ts")
        return None

    def probe(self) -> str:
        data = _call(self.client.auth_test)
        return f"Slack workspace {data.get('team', '?')} as {data.get('user', '?')}; integrators' channel {self.channel}"


class SlackTeacherNotifier:
    """Tells a Slack teacher, in the conversation (and thread) the escalation came from."""

    platform = "slack"

    def __init__(self, token: str, *, api_url: str = "https://slack.com/api/", client: WebClient | None = None) -> None:
        self.client = _client(token, api_url, client)

    def notify_teacher(self, notice: TeacherNotice) -> dict[str, Any]:
        channel = notice.platform_ref.get("channel") or notice.conversation_id
        if not channel:
            raise DeliveryError(f"{notice.ticket}: no Slack conversation recorded for the teacher", permanent=True)
        kwargs: dict[str, Any] = dict(channel=channel, text=mrkdwn(notice.text)[:TEXT_LIMIT])
        if is_slack_ts(notice.thread_id):
            kwargs["thread_ts"] = notice.thread_id
        data = _call(self.client.chat_postMessage, **kwargs)
        return {"channel": data.get("channel"), "ts": data.get("ts")}

    def probe(self) -> str:
        data = _call(self.client.auth_test)
        return f"Slack workspace {data.get('team', '?')}"
