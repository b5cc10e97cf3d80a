"""Check-ins posted where they were offered: a Slack DM or thread (Web API), a Teams chat (proactive message).

Translation only: the core (bot/checkins/service.py) decides what to say and when; these draw the
reply natively and post it. A repeat after a crash (the lease ran out mid-send) is looked for first
in Slack by the check-in's key in message metadata, as handoff posts are.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient

from adapters.delivery.slack_channel import _call, _client
from adapters.slack import api_url as slack_api_url
from adapters.slack.translate import is_slack_ts, render_reply
from bot.checkins.sending import CheckinMessage

log = logging.getLogger(__name__)

METADATA_EVENT = "coach_checkin"


class SlackCheckinSender:
    """Posts a check-in into the teacher's Slack DM, or the thread the coaching happened in."""

    platform = "slack"

    def __init__(self, token: str, *, api_url: str = "https://slack.com/api/", client: WebClient | None = None) -> None:
        self.client = _client(token, api_url, client)

    def send_checkin(self, message: CheckinMessage) -> dict[str, Any]:
        channel = message.platform_ref.get("channel") or message.conversation_id
        thread_ts = message.thread_id if is_slack_ts(message.thread_id) else None
        key = f"checkin-{message.checkin_id}"
        if message.attempt > 1:
            found = self._already_posted(channel, thread_ts, key)
            if found:
                log.info("check-in %s was already in Slack (ts %s); not posting again", message.checkin_id, found)
                return {"channel": channel, "ts": found, "found": True}
        drawn = render_reply(message.reply, thread_id=message.thread_id)
        kwargs: dict[str, Any] = dict(channel=channel, unfurl_links=False, unfurl_media=False,
                                      metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
                                      **drawn.as_kwargs())
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        data = _call(self.client.chat_postMessage, **kwargs)
        return {"channel": data.get("channel") or channel, "ts": data.get("ts")}

    def _already_posted(self, channel: str, thread_ts: str | None, key: str) -> str | None:
        try:
            if thread_ts:
                data = _call(self.client.conversations_replies, channel=channel, ts=thread_ts,
                             include_all_metadata=True, limit=200)
            else:
                data = _call(self.client.conversations_history, channel=channel, include_all_metadata=True, limit=50)
        except Exception as exc:  # no history scope: post again (at least once, never lost)
            log.info("cannot check Slack history before re-posting a check-in (%s)", exc)
            return None
        for item in data.get("messages") or []:
            meta = item.get("metadata") or {}
            if meta.get("event_type") == METADATA_EVENT and (meta.get("event_payload") or {}).get("key") == key:
                return item.get("ts")
        return None


class TeamsCheckinSender:
    """Posts a check-in into the Teams conversation it was offered in, through the stored reference."""

    platform = "teams"

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier  # adapters.teams.proactive.TeamsNotifier

    def send_checkin(self, message: CheckinMessage) -> dict[str, Any]:
        activity_id = self.notifier.run_sync(lambda: self.notifier.send_reply(message.memory_key, message.reply),
                                             what=f"a check-in to {message.memory_key!r}")
        return {"activity_id": activity_id}


def build_senders(settings: Any, db: Any) -> list[Any]:
    """The senders the settings allow: Slack with a bot token, Teams with an app registration."""
    senders: list[Any] = []
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
    if token:
        senders.append(SlackCheckinSender(token, api_url=slack_api_url(settings)))
    if settings.teams.app_id:
        try:
            from adapters.teams.proactive import TeamsNotifier

            senders.append(TeamsCheckinSender(TeamsNotifier.from_settings(settings, db)))
        except Exception as exc:  # a half-configured Teams registration: check-ins wait for a process that can send
            log.error("check-ins: Teams sender not built: %s", exc)
    return senders
