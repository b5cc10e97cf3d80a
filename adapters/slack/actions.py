"""Button clicks and the integrators' knowledge-base shortcut.

A click on a coach button (feedback, "Read it", check-in choices, route offers) or a handoff card
(Claim, Resolve) is written to the inbound queue before Bolt acks it (adapters.slack.events),
keyed by the message it was on, the button, the person and the click's trigger_id: the same click
delivered twice is acted on once, while a second, deliberate click ("Read it" again) is its own
item. The worker runs the core call and posts; the follow-up it posts carries the key in message
metadata, so a sweeper finishing a click whose process died finds it rather than posting twice.

The "Save to knowledge base" shortcut opens a modal, which must happen inside the three seconds
its trigger_id lives, so it stays in the listener; so does the modal's validation. Resolve on a
handoff card opens a modal too (adapters.slack.resolve_note), once the core has said the clicker
may resolve it; the modal's submission, with its note, is the queued item that resolves.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import kb_draft, resolve_note
from adapters.slack.commands import refusal
from adapters.slack.sinks import Mark, find_marked, metadata, responder
from adapters.slack.translate import (
    HANDOFF_ACTIONS, action_from_payload, after_feedback, handoff_update, is_slack_ts, render_reply,
)
from adapters.slack.worker import KEY_PREFIX, Bridge, Kind
from bot.access import Actor, Outcome
from bot.checkins.service import CHOICE_ACTIONS
from bot.state.inbound import InboundEventRow

log = logging.getLogger(__name__)
Ack = Callable[..., Awaitable[Any]]

FEEDBACK_ACTION = re.compile(r"^coach\.(helped|not_quite|talk_to_person|tech_problem|read_source|checkin_after_day|checkin_few_days|"
                             r"checkin_next_week|checkin_no|checkin_never|went_well|went_mixed|not_yet)$")


# Resolve asks for a note first: its click opens a modal, and the modal's submission is queued.
RESOLVE_ACTION = "handoff_resolve"


def _is_queued(action_id: str) -> bool:
    return bool(FEEDBACK_ACTION.match(action_id)) or (action_id in HANDOFF_ACTIONS and action_id != RESOLVE_ACTION)


def _actor(body: Mapping[str, Any]) -> Actor:
    # "claimed by jordan", not an id; the core decides whether this person may act at all.
    who = body.get("user") or {}
    return Actor(platform="slack", user_id=str(who.get("id") or ""),
                 name=who.get("name") or who.get("username") or None)


def action_item(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The inbound key and row payload for a click on a coach or handoff button, or a Resolve modal's
    submission; None for anything else."""
    if body.get("type") == "view_submission":
        view = body.get("view") or {}
        user = (body.get("user") or {}).get("id") or ""
        if view.get("callback_id") != resolve_note.VIEW_CALLBACK or not view.get("id"):
            return None
        # One modal is one resolve: a submission delivered twice is acted on once.
        return f"{KEY_PREFIX}act:view:{view['id']}:{user}", {"kind": Kind.ACTION.value, "body": dict(body)}
    if body.get("type") != "block_actions" or not body.get("actions"):
        return None
    action = body["actions"][0]
    action_id = str(action.get("action_id") or "")
    if not _is_queued(action_id):
        return None
    container = body.get("container") or {}
    where = container.get("message_ts") or (body.get("message") or {}).get("ts") or ""
    click = body.get("trigger_id") or action.get("action_ts")
    if not click:
        return None
    user = (body.get("user") or {}).get("id") or ""
    return f"{KEY_PREFIX}act:{where}:{action_id}:{user}:{click}", {"kind": Kind.ACTION.value, "body": dict(body)}


async def _feedback(bridge: Bridge, key: str, row: InboundEventRow, client: AsyncWebClient) -> bool:
    body: dict[str, Any] = row.payload["body"]
    event = action_from_payload(body)
    if event is None:
        return True
    container = body.get("container") or {}
    ephemeral = bool(container.get("is_ephemeral"))
    thread_ts = event.thread_id if is_slack_ts(event.thread_id) else None
    if row.attempts > 1 and not ephemeral:  # a process may have posted before it died
        found = await find_marked(client, event.conversation_id, key, thread_ts=thread_ts,
                                  oldest=container.get("message_ts"))
        if found is not None and found.mark is Mark.ANSWER:
            log.info("inbound item %s was answered already (%s); recorded, not posted again", key, found.ts)
            await bridge.record_answer(key, found.ts)
            return True
    if event.action in CHOICE_ACTIONS:
        event = event.model_copy(update={"user_tz": await _user_tz(client, event.user_id)})
    reply = await bridge.run(bridge.coach.handle_action, event)
    if reply is None:  # this click was already counted: nothing is posted twice
        return True
    respond = responder(body.get("response_url") or "", bridge.session)
    original = body.get("message") or {}
    # "Read it" leaves the buttons as they are; a verdict replaces them with what was said.
    if event.action.is_feedback and reply.turn_id and original.get("blocks"):
        blocks = after_feedback(original["blocks"], action=event.action, user_id=event.user_id,
                                direct=event.conversation_id.startswith("D"))
        text = original.get("text") or " "
        if ephemeral:
            await respond(replace_original=True, text=text, blocks=blocks)
        else:
            await client.chat_update(channel=event.conversation_id, ts=str(container.get("message_ts", "")),
                                     text=text, blocks=blocks)
    follow = render_reply(reply, thread_id=event.thread_id)
    if ephemeral:
        await respond(response_type="ephemeral", replace_original=False, **follow.as_kwargs())
        await bridge.record_answer(key, "response_url")
        return True
    posted = await client.chat_postMessage(channel=event.conversation_id, thread_ts=thread_ts,
                                           metadata=metadata(key, Mark.ANSWER), **follow.as_kwargs())
    await bridge.record_answer(key, str(posted.get("ts") or "posted"))
    return True


async def _user_tz(client: AsyncWebClient, user_id: str) -> str | None:
    """The teacher's own time zone from their Slack profile (scope users:read), so a check-in lands in their day."""
    try:
        resp = await client.users_info(user=user_id)
    except SlackApiError as exc:
        log.info("no Slack time zone for a check-in (%s); the school's is used", exc.response.get("error"))
        return None
    tz = (resp.get("user") or {}).get("tz")
    return tz if isinstance(tz, str) and tz else None


async def _handoff(bridge: Bridge, key: str, row: InboundEventRow, client: AsyncWebClient) -> bool:
    body: dict[str, Any] = row.payload["body"]
    action = body["actions"][0]
    try:
        escalation_id = int(action.get("value") or "")
    except ValueError:
        log.warning("handoff button with a malformed value %r", action.get("value"))
        return True
    kind = HANDOFF_ACTIONS[action["action_id"]]
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    result = await bridge.run(bridge.coach.escalation_action, escalation_id, kind, _actor(body))
    if result.outcome is Outcome.REFUSED:
        await responder(body.get("response_url") or "", bridge.session)(
            response_type="ephemeral", replace_original=False, text=result.message)
        return True
    if not result.changed:  # nothing changed (already claimed, already resolved)
        return True
    if not channel or channel != bridge.settings.slack.integrator_channel:
        # Handoff cards live only in the configured integrators' channel; the outbox redraws that one.
        log.warning("handoff %s recorded; not redrawing a card outside the integrators' channel", kind)
        return True
    updated = handoff_update((body.get("message") or {}).get("blocks") or [], text=result.channel_text or "",
                             action=kind)
    # Redrawing the card is an update: done twice, it shows the same thing.
    await client.chat_update(channel=channel, ts=str(container.get("message_ts", "")), **updated.as_kwargs())
    return True


async def _resolve_with_note(bridge: Bridge, key: str, row: InboundEventRow, client: AsyncWebClient) -> bool:
    """A submitted Resolve modal: the core checks, masks and records the note, and resolves."""
    body: dict[str, Any] = row.payload["body"]
    form = resolve_note.submitted(body.get("view") or {})
    if form is None:
        log.warning("a Resolve modal submission without its handoff; nothing changed")
        return True
    result = await bridge.run(bridge.coach.escalation_action, form.escalation_id, "resolve", _actor(body), form.note)
    if not result.changed:
        # Refused, or resolved by someone else meanwhile: the note was not recorded, so say why, privately.
        if form.response_url:
            await responder(form.response_url, bridge.session)(
                response_type="ephemeral", replace_original=False, text=result.message)
        return True
    # The card is redrawn by the outbox's `resolved` delivery (with the note, masked), as for a
    # resolve from the command line: the modal has no copy of the card's blocks to redraw from.
    log.info("handoff %s resolved from Slack%s", form.escalation_id, " with a note" if form.note else "")
    return True


async def process_action(bridge: Bridge, key: str, row: InboundEventRow, client: AsyncWebClient) -> bool:
    """Act on one recorded click (a coach button or a handoff card) or Resolve modal; False leaves it queued."""
    if row.payload["body"].get("type") == "view_submission":
        return await _resolve_with_note(bridge, key, row, client)
    action_id = str(row.payload["body"]["actions"][0].get("action_id") or "")
    if action_id in HANDOFF_ACTIONS:
        return await _handoff(bridge, key, row, client)
    return await _feedback(bridge, key, row, client)


def register(app: AsyncApp, bridge: Bridge) -> None:
    """The button listeners, and the knowledge-base shortcut and modal."""
    settings = bridge.settings

    async def on_click(ack: Ack, context: dict, client: AsyncWebClient) -> None:
        await ack()
        key = context.get("inbound_key")
        if key:  # recorded before the ack (adapters.slack.events): acted on once, from the queue
            await bridge.process(key, client)

    app.action(FEEDBACK_ACTION)(on_click)
    for action_id in HANDOFF_ACTIONS:
        if action_id != RESOLVE_ACTION:
            app.action(action_id)(on_click)

    async def open_resolve(ack: Ack, body: dict, client: AsyncWebClient) -> None:
        await ack()
        action = body["actions"][0]
        response_url = body.get("response_url") or ""
        try:
            escalation_id = int(action.get("value") or "")
        except ValueError:
            log.warning("handoff button with a malformed value %r", action.get("value"))
            return
        # The core says now whether this person may resolve it, so nobody writes a note in vain.
        refused = await bridge.run(bridge.coach.escalation_check, escalation_id, "resolve", _actor(body))
        if refused is not None:
            await responder(response_url, bridge.session)(
                response_type="ephemeral", replace_original=False, text=refused.message)
            return
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        view = resolve_note.resolve_modal(escalation_id, channel=channel, response_url=response_url,
                                          message_ts=str(container.get("message_ts") or ""))
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:  # the trigger lives three seconds: a slow moment must not pass silently
            log.warning("could not open the Resolve note for handoff %s: %s", escalation_id, exc.response.get("error"))
            await responder(response_url, bridge.session)(
                response_type="ephemeral", replace_original=False,
                text="Slack did not open the note form in time; click Resolve again. Nothing changed.")

    app.action(RESOLVE_ACTION)(open_resolve)

    async def on_resolve_note(ack: Ack, context: dict, client: AsyncWebClient) -> None:
        await ack()  # closes the modal; the submission was recorded before this (adapters.slack.events)
        key = context.get("inbound_key")
        if key:
            await bridge.process(key, client)

    app.view_submission(resolve_note.VIEW_CALLBACK)(on_resolve_note)

    async def open_draft(ack: Ack, body: dict, client: AsyncWebClient, respond: Ack) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        if not bridge.is_integrator(user):
            await respond(response_type="ephemeral",
                          text=refusal(bool(settings.slack.integrator_user_ids or settings.access.integrator.slack)))
            return
        view = kb_draft.draft_modal(body.get("message") or {}, channel_id=(body.get("channel") or {}).get("id"))
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    app.message_shortcut(kb_draft.SHORTCUT_CALLBACK)(open_draft)

    async def save_draft(ack: Ack, body: dict, view: dict) -> None:
        # Validation answers in the ack itself (Slack shows the errors in the modal); the file
        # write is local and quick, so it fits inside the three seconds too.
        user = (body.get("user") or {}).get("id", "")
        if not bridge.is_integrator(user):
            await ack(response_action="errors", errors={"kb_title": "Only integrators can save drafts."})
            return
        entry, errors = kb_draft.entry_from_view(view, user_id=user)
        if entry is None:
            await ack(response_action="errors", errors=errors)
            return
        path = await asyncio.to_thread(kb_draft.write_draft, entry, bridge.drafts_dir)
        log.info("knowledge-base draft %s saved by %s", path.name, user)
        await ack(response_action="update", view=kb_draft.saved_view(path, path.stem))

    app.view_submission(kb_draft.VIEW_CALLBACK)(save_draft)
    bridge.handlers[Kind.ACTION] = process_action
