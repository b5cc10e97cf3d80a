"""Where handoffs go: the delivery channels, and the wiring from settings to an outbox and its worker.

| channel | module | configured by | takes |
|---|---|---|---|
| `email` | email.py | COACH_EMAIL__HOST + COACH_EMAIL__HELPDESK_TO / __INTEGRATOR_TO | opened, updated |
| `webhook` | webhook.py | COACH_WEBHOOK__URL + COACH_WEBHOOK__SECRET (+ __TARGETS) | every event |
| `slack_channel` | slack_channel.py | SLACK_BOT_TOKEN + COACH_SLACK__INTEGRATOR_CHANNEL | integrator handoffs |
| `teams_channel` | teams_channel.py | COACH_TEAMS_CHANNEL__CONVERSATION_ID (+ __SERVICE_URL) | integrator handoffs |
| `teacher:slack`, `teacher:teams` | slack_channel.py, teams_channel.py | the platform's credentials | claimed, resolved |
| `safeguarding_email`, `_slack`, `_teams` | the same three | `safeguarding.target` in config/coach.yaml | safeguarding concerns, in full |
| `safeguarding_deputy_email`, ... | the same three | `safeguarding.deputy` | concerns nobody claimed in time |

The core owns the table and the retries (bot/handoff/outbox.py) and the protocols (bot/handoff/delivery.py); nothing here decides
routes or keeps state of its own.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass, field

from adapters.platforms import declare_platforms
from adapters.slack import api_url as slack_api_url
from bot.handoff.escalations import Escalations
from bot.handoff.delivery import (SAFEGUARDING_DEPUTY, SAFEGUARDING_LEAD, DeliveryChannel, TeacherChannel,
                                  TeacherNotifier)
from bot.handoff.listener import OutboxListener
from bot.handoff.outbox import Outbox
from bot.handoff.worker import OutboxWorker
from bot.settings import SafeguardingTarget, Settings
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB

log = logging.getLogger(__name__)



@dataclass
class Channels:
    """The channels built from settings, and why any half-configured target was left out."""

    channels: list[DeliveryChannel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def build_channels(settings: Settings, db: StateDB) -> Channels:
    """Every delivery channel the settings configure; a half-configured one is reported, not fatal."""
    out = Channels()
    if settings.email.host:
        from adapters.delivery.email import EmailChannel

        channel = EmailChannel(settings.email)
        if channel.targets:
            out.channels.append(channel)
        else:
            out.problems.append("e-mail: COACH_EMAIL__HOST is set but neither COACH_EMAIL__HELPDESK_TO nor "
                                "COACH_EMAIL__INTEGRATOR_TO is")
    if settings.webhook.url:
        from adapters.delivery.webhook import WebhookChannel

        try:
            out.channels.append(WebhookChannel(settings.webhook))
        except ValueError as exc:
            out.problems.append(f"webhook: {exc}")
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
    if token:
        from adapters.delivery.slack_channel import SlackChannel, SlackTeacherNotifier

        if settings.slack.integrator_channel:
            out.channels.append(SlackChannel(token, settings.slack.integrator_channel, api_url=slack_api_url(settings)))
        out.channels.append(TeacherChannel(SlackTeacherNotifier(token, api_url=slack_api_url(settings))))
    elif settings.slack.integrator_channel:
        out.problems.append("Slack channel: COACH_SLACK__INTEGRATOR_CHANNEL is set but SLACK_BOT_TOKEN is not")
    if settings.teams_channel.conversation_id or settings.teams.app_id:
        try:
            from adapters.delivery.teams_channel import TeamsChannel, TeamsTeacherNotifier
            from adapters.teams.proactive import TeamsNotifier
            from adapters.teams.references import ReferenceStore

            notifier = TeamsNotifier.from_settings(settings, db)
            references = ReferenceStore(db)
            if settings.teams_channel.conversation_id:
                bot_id = f"28:{settings.teams.app_id}" if settings.teams.app_id else None
                out.channels.append(TeamsChannel(notifier, references, settings.teams_channel.conversation_id,
                                                 service_url=settings.teams_channel.service_url, bot_id=bot_id))
            out.channels.append(TeacherChannel(TeamsTeacherNotifier(notifier, references)))
        except Exception as exc:  # a half-configured Teams registration (StartupError names the variable)
            out.problems.append(f"Teams: {exc}")
    _person_channels(settings, db, settings.safeguarding.target, SAFEGUARDING_LEAD, "safeguarding", out)
    _person_channels(settings, db, settings.safeguarding.deputy, SAFEGUARDING_DEPUTY, "safeguarding_deputy", out)
    for problem in out.problems:
        log.error("handoff delivery: %s", problem)
    return out


def _person_channels(settings: Settings, db: StateDB, person: SafeguardingTarget, target: str, prefix: str,
                     out: Channels) -> None:
    """The private channels to one person (the safeguarding lead or deputy): their e-mail, Slack DM, Teams chat.

    The same channel classes as the integrators' targets, under their own names (each row's
    idempotency key names its channel) and for the one delivery target only.
    """
    setting = f"safeguarding.{'target' if target == SAFEGUARDING_LEAD else 'deputy'}"
    found: list[DeliveryChannel] = []
    if person.email:
        if settings.email.host:
            from adapters.delivery.email import EmailChannel

            found.append(EmailChannel(settings.email.model_copy(update={"integrator_to": person.email,
                                                                        "helpdesk_to": None})))
        else:
            out.problems.append(f"{setting}.email is set but COACH_EMAIL__HOST is not")
    if person.slack:
        token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
        if token:
            from adapters.delivery.slack_channel import SlackChannel

            found.append(SlackChannel(token, person.slack, api_url=slack_api_url(settings)))
        else:
            out.problems.append(f"{setting}.slack is set but SLACK_BOT_TOKEN is not")
    if person.teams:
        try:
            from adapters.delivery.teams_channel import TeamsChannel
            from adapters.teams.proactive import TeamsNotifier
            from adapters.teams.references import ReferenceStore

            bot_id = f"28:{settings.teams.app_id}" if settings.teams.app_id else None
            private = TeamsChannel(TeamsNotifier.from_settings(settings, db), ReferenceStore(db), person.teams,
                                   service_url=settings.teams_channel.service_url, bot_id=bot_id)
            private.with_transcript = True
            found.append(private)
        except Exception as exc:  # a half-configured Teams registration
            out.problems.append(f"{setting}.teams: {exc}")
    for channel in found:
        channel.name = f"{prefix}_{channel.name.split('_')[0]}"  # safeguarding_email, safeguarding_slack, ...
        channel.targets = frozenset({target})
        out.channels.append(channel)


@dataclass
class Delivery:
    """The outbox, the listener the coach calls, and the worker that drains the outbox."""

    outbox: Outbox
    listener: OutboxListener
    worker: OutboxWorker
    problems: list[str] = field(default_factory=list)

    def add_teacher_notifier(self, notifier: TeacherNotifier) -> None:
        """An adapter's own notifier replaces the default for its platform (e.g. one bound to the server's loop)."""
        self.outbox.add_channel(TeacherChannel(notifier))

    def close(self, flush_seconds: float = 5.0) -> None:
        """Deliver what is due (up to `flush_seconds`), then stop the worker; the rest waits in the outbox."""
        self.worker.stop(timeout=flush_seconds, flush=True)


def build_delivery(settings: Settings, db: StateDB, escalations: Escalations, memory: ConversationMemory, *,
                   start: bool = True, channels: Channels | None = None) -> Delivery | None:
    """Wire the configured targets to an outbox; None when no target is configured (records only)."""
    declare_platforms()
    built = channels or build_channels(settings, db)
    if not built.channels:
        return None
    outbox = Outbox(db, built.channels, settings.outbox)
    worker = OutboxWorker(outbox)
    listener = OutboxListener(outbox, escalations, memory, settings, wake=worker.wake)
    escalations.add_writer(listener.write)  # delivery rows are written in the escalation's own transaction
    worker.on_start = listener.recover  # and, for anything recorded without them, recovered while running
    worker.on_poll = listener.escalate_unclaimed
    delivery = Delivery(outbox, listener, worker, built.problems)
    if start:
        worker.start()
        # A one-shot command (`coach ask`) exits right after answering: deliver what it recorded first.
        atexit.register(delivery.close, 10.0)
    return delivery
