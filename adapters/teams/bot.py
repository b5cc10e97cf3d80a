"""The Teams ActivityHandler: translate, `Coach.handle`, translate back. Nothing else.

The server gives it `enqueue` (adapters/teams/worker.py): a teacher's message is then recorded
in the inbound queue and answered after the HTTP request, by the worker; card clicks stay here.

Typing indicator: sent only when the answer is not ready within `typing_after` seconds (1 s
by default) and repeated every 3 s while the core is still composing. The template composer
answers in 20-50 ms, so most turns cost one HTTP call (the card) instead of two, and the
transcript has no flicker; a slow LLM answer still shows "Coach is typing...".

Claim and Resolve on a handoff card in the integrators' channel (adapters/delivery/teams_channel.py
posts it) arrive as Action.Submit messages; the click goes to `Coach.escalation_action`, which
decides and records (and queues the teacher's notice), and the card is redrawn with what it returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    ChannelAccount,
)

from adapters.delivery.teams_channel import handoff_card, handoff_click
from adapters.teams import cards, translate
from adapters.teams.references import ReferenceStore
from adapters.teams.worker import Ack, note_ack
from bot.access import ActionResult, Actor, Outcome
from bot.handoff.escalations import EscalationStatus
from bot.models import ActionEvent, InboundMessage, Reply

log = logging.getLogger(__name__)

TYPING_AFTER_SECONDS = 1.0
TYPING_REPEAT_SECONDS = 3.0  # Teams shows a typing indicator for about three seconds
T = TypeVar("T")


class CoachLike(Protocol):
    """The calls the adapter makes into the core (`bot.coach.Coach` satisfies it)."""

    def handle(self, message: InboundMessage) -> Reply: ...

    def handle_action(self, event: ActionEvent) -> Reply | None: ...

    def escalation_action(self, escalation_id: int, action: str, actor: Actor,
                          note: str | None = None) -> ActionResult: ...


class TeamsCoachBot(ActivityHandler):
    """Routes Teams activities to the coach; the coach decides, this class only carries."""

    def __init__(
        self,
        coach: CoachLike,
        *,
        references: ReferenceStore | None = None,
        claim_event: Callable[[str], bool] | None = None,
        integrator_name: str = "an integrator",
        typing_after: float | None = TYPING_AFTER_SECONDS,
        integrator_channel: str | None = None,
        service_url: str | None = None,
        enqueue: Callable[[Activity, InboundMessage], Awaitable[Ack]] | None = None,
    ) -> None:
        """`claim_event` (StateDB.claim_event) makes a retried delivery answer once; `typing_after=None` never types.

        With `enqueue` (TeamsWorker.enqueue) a teacher's message is recorded and answered after
        the HTTP request by the worker; without it, inside the request.

        `integrator_channel` (settings.teams_channel.conversation_id) is the only channel whose
        handoff Claim/Resolve clicks are taken; with none configured, no click counts. With
        `service_url` (settings.teams_channel.service_url), a card is only redrawn through it.
        """
        super().__init__()
        if coach is None:
            raise TypeError("TeamsCoachBot(): coach cannot be None.")
        self.coach = coach
        self.references = references
        self.claim_event = claim_event
        self.integrator_name = integrator_name
        self.typing_after = typing_after
        # The channel, not a reply chain in it.
        self.integrator_channel = integrator_channel.split(";", 1)[0] if integrator_channel else None
        self.service_url = service_url
        self.enqueue = enqueue

    # -- every turn ----------------------------------------------------------------------------

    async def on_turn(self, turn_context: TurnContext) -> None:
        """Store where this conversation can be reached, then dispatch by activity type."""
        if turn_context is None:
            raise TypeError("TeamsCoachBot.on_turn(): turn_context cannot be None.")
        activity = turn_context.activity
        if self.references is not None and activity is not None and activity.type in (
                ActivityTypes.message, ActivityTypes.conversation_update, ActivityTypes.invoke):
            try:
                await _in_thread(self.references.save_all, translate.reference_entries(activity))
            except Exception:  # answering matters more than remembering where to answer later
                log.exception("could not store the conversation reference")
        await super().on_turn(turn_context)

    # -- messages ------------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        """A teacher's message, or an Action.Submit click on one of our cards."""
        activity = turn_context.activity
        click = handoff_click(activity.value)
        plain = click is None and not translate.is_card_action(activity)
        if plain and activity.value is not None and not (activity.text or "").strip():
            log.info("ignoring a card submit that is not one of ours")
            return
        if plain and self.enqueue is not None:
            # Recorded (deduplicated by activity id) and answered after the request by the worker.
            note_ack(await self.enqueue(activity, translate.to_inbound(activity)))
            return
        # Clicks (and every message, without a queue) are answered inside the request: a click is
        # one database update and a card redraw, well inside the Bot Framework's wait.
        if not await self._first_delivery(activity):
            log.info("activity %s was delivered again; answered already", activity.id)
            return
        if click is not None:
            await self._on_handoff_click(turn_context, click.escalation_id, click.kind, click.note)
            return
        if not plain:
            await self._on_card_action(turn_context)
            return
        message = translate.to_inbound(activity)
        reply = await self._compose(turn_context, self.coach.handle, message)
        await self._send_reply(turn_context, reply)

    async def _on_card_action(self, turn_context: TurnContext) -> None:
        event = translate.to_action_event(turn_context.activity)
        if event is None:
            log.info("ignoring a click with data that is not ours")
            return
        reply = await self._compose(turn_context, self.coach.handle_action, event)
        if reply is None:  # a second click: the core counted the first, so say nothing more
            return
        await self._send_reply(turn_context, reply)
        if event.action.is_feedback:  # "Read it" leaves the card's buttons as they are
            await self._mark_chosen(turn_context, event)

    async def _on_handoff_click(self, turn_context: TurnContext, escalation_id: int, kind: str,
                                note: str | None = None) -> None:
        """Claim or Resolve on a handoff card: `Coach.escalation_action` decides, then the card is redrawn.

        Resolve carries the card's note input, which the core masks and records.

        Handoff cards are only ever posted to the configured integrators' channel, so a click from
        anywhere else (or any click, with no channel configured) is forged or stale: it changes
        nothing and nothing is sent back to the caller's service URL.
        """
        activity = turn_context.activity
        if not self._in_integrators_channel(activity):
            log.warning("ignoring a handoff %s for escalation %s from outside the configured integrators' channel "
                        "(COACH_TEAMS_CHANNEL__CONVERSATION_ID)", kind, escalation_id)
            return
        who = activity.from_property
        if who is None or not (who.aad_object_id or who.id):
            log.info("ignoring a handoff click with no sender")
            return
        # The AAD object id is the person across every Teams conversation; the Bot Framework id is
        # per bot, so it is only the fallback (the emulator sends no AAD id).
        actor = Actor(platform="teams", user_id=who.aad_object_id or who.id, name=who.name or None)
        result = await _in_thread(functools.partial(self.coach.escalation_action, escalation_id, kind, actor, note))
        if result.outcome is Outcome.REFUSED:
            await turn_context.send_activity(Activity(type=ActivityTypes.message, text=result.message))
            return
        if not result.changed:  # already claimed or resolved: the core changed nothing, so neither does the card
            return
        # Teams sets replyToId to the card's message; a root post's id is also its reply chain's id.
        card_id = activity.reply_to_id or translate.split_conversation_id(activity.conversation.id)[1]
        if not card_id:
            log.info("handoff %s recorded; no card id to redraw (the outbox redraws it)", kind)
            return
        if self.service_url and _normal_url(activity.service_url) != _normal_url(self.service_url):
            log.warning("handoff %s recorded; not redrawing the card through an unconfigured service URL", kind)
            return
        card = handoff_card(result.channel_text or "", escalation_id,
                            EscalationStatus.CLAIMED if kind == "claim" else EscalationStatus.RESOLVED)
        try:
            await turn_context.update_activity(cards.card_update_activity(card, card_id))
        except Exception:  # the change is recorded and the outbox redraws the card too; a stale card is cosmetic
            log.warning("could not update the handoff card %s", card_id, exc_info=True)

    def _in_integrators_channel(self, activity: Activity) -> bool:
        if self.integrator_channel is None:
            return False
        conversation = activity.conversation.id if activity.conversation is not None else ""
        return translate.split_conversation_id(conversation or "")[0] == self.integrator_channel

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        """`adaptiveCard/action` (an Action.Execute click) is ours; other invokes get the SDK's answer."""
        if turn_context.activity.name == "adaptiveCard/action":
            # Not via on_adaptive_card_invoke: ActivityHandler serializes that body and CloudAdapter.process
            # serializes it again, which raises in botbuilder 4.17. The model is handed over once, here.
            return InvokeResponse(status=200, body=await self._on_card_invoke(turn_context))
        return await super().on_invoke_activity(turn_context)

    async def _on_card_invoke(self, turn_context: TurnContext) -> AdaptiveCardInvokeResponse:
        """Same core call as a Submit click; the card comes back refreshed in the invoke response."""
        event = translate.to_action_event(turn_context.activity)
        if event is None:
            return AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.activity.message",
                                              value="That button isn't one of mine.")
        reply = await self._compose(turn_context, self.coach.handle_action, event)
        if reply is not None:
            await self._send_reply(turn_context, reply)
        sent = await self._sent_card(event.turn_id)
        if sent is None:
            return AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.activity.message",
                                              value="Thanks, noted.")
        if not event.action.is_feedback:
            return AdaptiveCardInvokeResponse(status_code=200, type=cards.CARD_CONTENT_TYPE, value=sent.card)
        card = cards.chosen_card(sent.card, event.action, turn_context.activity.from_property.name)
        if reply is not None and self.references is not None:
            await _in_thread(self.references.save_card, event.turn_id, sent.activity_id, sent.conversation_id, card)
        return AdaptiveCardInvokeResponse(status_code=200, type=cards.CARD_CONTENT_TYPE, value=card)

    # -- membership ----------------------------------------------------------------------------

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        """Say hello once, when the bot itself is added; people joining a team hear nothing from us."""
        if translate.bot_was_added(turn_context.activity):
            await turn_context.send_activity(
                Activity(type=ActivityTypes.message, text=translate.welcome_text(self.integrator_name),
                         summary="Hi, I'm the Integration Coach."))

    async def on_unrecognized_activity_type(self, turn_context: TurnContext) -> None:
        """Activity types we don't know are acknowledged and ignored."""
        log.info("ignoring a %r activity", turn_context.activity.type)

    # -- helpers -------------------------------------------------------------------------------

    async def _first_delivery(self, activity: Activity) -> bool:
        # The Bot Framework retries a delivery it thinks timed out; answer it once.
        if self.claim_event is None or not activity.id or activity.conversation is None:
            return True
        return await _in_thread(self.claim_event, f"teams:{activity.conversation.id}:{activity.id}"[:300])

    async def _compose(self, turn_context: TurnContext, call: Callable[[Any], T], argument: Any) -> T:
        """Run the synchronous core in a worker thread, showing typing if it takes a while."""
        future = asyncio.get_running_loop().run_in_executor(None, call, argument)
        if self.typing_after is not None:
            done, _ = await asyncio.wait({future}, timeout=self.typing_after)
            while not done:
                await self._typing(turn_context)
                done, _ = await asyncio.wait({future}, timeout=TYPING_REPEAT_SECONDS)
        return await future

    @staticmethod
    async def _typing(turn_context: TurnContext) -> None:
        try:
            await turn_context.send_activity(Activity(type=ActivityTypes.typing))
        except Exception:  # the answer matters, the indicator does not
            log.warning("could not send the typing indicator", exc_info=True)

    async def _send_reply(self, turn_context: TurnContext, reply: Reply) -> None:
        card = cards.reply_card(reply)
        response = await turn_context.send_activity(cards.card_activity(card, reply.text))
        if self.references is not None and reply.turn_id and reply.actions and response is not None and response.id:
            try:
                await _in_thread(self.references.save_card, reply.turn_id, response.id,
                                 turn_context.activity.conversation.id, card)
            except Exception:  # the card works without it; only the redraw after a click is lost
                log.exception("could not remember the card for turn %s", reply.turn_id)

    async def _sent_card(self, turn_id: str):
        if self.references is None:
            return None
        return await _in_thread(self.references.card, turn_id)

    async def _mark_chosen(self, turn_context: TurnContext, event: ActionEvent) -> None:
        """Redraw the clicked card: the buttons replaced by what was chosen."""
        sent = await self._sent_card(event.turn_id)
        if sent is None or self.references is None:  # sent before this process kept cards: leave it
            return
        card = cards.chosen_card(sent.card, event.action, turn_context.activity.from_property.name)
        update = cards.card_update_activity(card, sent.activity_id)
        update.conversation = turn_context.activity.conversation
        try:
            await turn_context.update_activity(update)
            await _in_thread(self.references.save_card, event.turn_id, sent.activity_id, sent.conversation_id, card)
        except Exception:  # the click is counted and answered; a stale card is cosmetic
            log.warning("could not update the card for turn %s", event.turn_id, exc_info=True)


def _normal_url(url: str | None) -> str:
    return (url or "").strip().rstrip("/").lower()


async def _in_thread(call: Callable[..., T], *args: Any) -> T:
    # Database calls are synchronous; keep them off the event loop.
    return await asyncio.get_running_loop().run_in_executor(None, call, *args)
