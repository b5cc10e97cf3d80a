"""`Coach.handle`: the one path every platform's messages take."""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
import numpy as np

from bot.access import Actor, ActionResult
from bot.checkins.service import CHECKIN_ACTIONS, CheckinService
from bot.compose import replies
from bot.compose.templates import CoachingRequest, Composer, Composition, TemplateComposer
from bot.handoff.desk import EscalationEvent, EscalationListener, escalation_action, escalation_check
from bot.handoff.escalations import Escalations, Opened
from bot.models import Action, ActionEvent, Handoff, InboundMessage, Reply, Route, Source
from bot.settings import Settings
from bot.state.memory import ConversationMemory
from bot.models import PastTurn
from bot.platforms import Capability, platforms
from bot.triage.categories import Category
from bot.triage.router import ConversationContext, Decision, Triage
from knowledge.search import Retriever, SearchResult

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A follow-up this short ("and for year 2?") says little alone: the earlier turn counts fully.
SHORT_FOLLOW_UP = 8
# How many small-talk turns may sit between a coaching turn and the follow-up that refers back to it.
MAX_TOPIC_GAP = 1
COACH_ACTIONS = [Action.HELPED, Action.NOT_QUITE, Action.TALK_TO_PERSON, Action.TECH_PROBLEM]


def _coaching_topic(history: Sequence[PastTurn]) -> list[PastTurn]:
    """The last coaching turn and any small-talk turns after it: what a follow-up refers back to.

    A turn in between that went to small talk ("but who would even read them?" read as chat)
    does not end the topic; a helpdesk or handoff turn does.
    """
    after: list[PastTurn] = []
    for turn in reversed(history[-(MAX_TOPIC_GAP + 1):]):
        if turn.route == Route.COACH.value:
            return [turn, *reversed(after)]
        if turn.route != Route.OTHER.value:
            return []
        after.append(turn)
    return []


def clean_text(text: str, max_chars: int) -> tuple[str, list[str]]:
    """Strip control characters and cut an overlong message; returns the text and any notices."""
    notices: list[str] = []
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text or ""))
    text = text.replace("\r\n", "\n").strip()
    if len(text) > max_chars:
        notices.append(
            f"Your message was {len(text):,} characters, so I read the first {max_chars:,}. "
            "A short question works best."
        )
        text = text[:max_chars]
    return text, notices


@dataclass
class Coach:
    """Triage, retrieval, composition and the handoff decision, composed from small parts."""

    settings: Settings
    retriever: Retriever
    triage: Triage
    memory: ConversationMemory
    escalations: Escalations
    composer: Composer = field(default_factory=TemplateComposer)
    fallback: Composer = field(default_factory=TemplateComposer)
    listener: EscalationListener | None = None
    _lexical: Retriever | None = field(default=None, init=False, repr=False)
    checkins: CheckinService | None = None  # coaching cycles; None turns them off

    def handle(self, message: InboundMessage) -> Reply:
        """Answer one teacher message; the reply says the route, sources, and any handoff."""
        if message is None:
            raise TypeError("Coach.handle(): message cannot be None.")
        text, notices = clean_text(message.text, self.settings.reply.max_message_chars)
        key = message.memory_key
        if not text:
            return Reply(text=replies.empty_reply(), route=Route.OTHER, notices=notices)
        recorded = self._recorded(message)
        if recorded is not None:  # the same platform message again: the recorded reply, nothing redone
            return recorded
        if self.checkins is not None:
            # "stop", "no more check-ins", "checkins": the teacher's own words about their check-ins.
            command = self.checkins.command(message, text)
            if command is not None:
                return command
        history = self.memory.history(key)
        # A conversation that raised a concern stays on this machine from then on.
        local_only = self.escalations.sensitive(key)
        triage = self._local_triage() if local_only else self.triage
        if self.checkins is not None and history:
            self.checkins.note_reply(history, text)
        # One embedding of the message serves triage and, for a first turn, retrieval.
        vector: np.ndarray | None = triage.embed(text)
        decision = triage.decide(text, self._context(history, key), vector=vector)
        vector = triage.retrieval_vector(text, vector)

        sources: list[Source] = []
        handoff: Handoff | None = None
        composer_name = "rules"
        confidence = 0.0
        actions: list[Action] = []
        if decision.route is Route.COACH:
            result = self._retrieve(text, history, vector, local_only=local_only)
            confidence = result.confidence
            composition = self._compose(text, result, history, key, local_only=local_only, vector=vector)
            reply_text, composer_name = composition.text, composition.composer
            sources = self._sources(result, composition)
            actions = list(COACH_ACTIONS)
        elif decision.route in (Route.HELPDESK, Route.INTEGRATOR):
            opened = self._escalate(message, text, decision, history)
            handoff = Handoff(target=opened.target, reason=opened.reason, ticket=opened.ticket,
                              urgent=opened.urgent, created=opened.created)
            if decision.route is Route.HELPDESK:
                reply_text = replies.helpdesk_reply(text, decision, opened.ticket, opened.created, self.settings,
                                                    live=platforms.can(message.platform, Capability.TELL_LATER))
            else:
                reply_text = replies.integrator_reply(decision, opened.ticket, opened.created, self.settings,
                                                      reached=self._reached(decision))
        else:
            reply_text = replies.other_reply(decision, first_turn=not history)
        offer = replies.alternative_offer(decision)
        if offer is not None and not decision.urgent:
            line, action = offer
            reply_text = f"{reply_text}\n\n{line}"
            if action not in actions:
                actions.append(action)

        checkin = None
        if self.checkins is not None and handoff is None:
            checkin = self.checkins.maybe_offer(message, text, decision.route, history, [s.id for s in sources],
                                                urgent=decision.urgent)
            if checkin is not None:
                reply_text = f"{reply_text}\n\n{checkin.line}"
                actions = checkin.actions  # the choices stand in for the feedback buttons on this turn

        turn_id = self.memory.record(
            memory_key=key, platform=message.platform, user_id=message.user_id, text=text,
            route=decision.route.value, reason=decision.reason, reply=reply_text,
            sources=[s.id for s in sources], confidence=confidence, composer=composer_name,
            turn_id=message_turn_id(message),
        )
        if checkin is not None and self.checkins is not None:
            self.checkins.offer_turn(checkin, turn_id)
        log.info("turn %s route=%s reason=%r composer=%s sources=%s", turn_id, decision.route.value,
                 decision.reason, composer_name, [s.id for s in sources])
        if notices:
            reply_text = "\n".join(notices) + "\n\n" + reply_text
        return Reply(text=reply_text, route=decision.route, sources=sources, actions=actions, handoff=handoff,
                     turn_id=turn_id, composer=composer_name, notices=notices,
                     followup=checkin.followup if checkin is not None else None)

    def handle_action(self, event: ActionEvent) -> Reply | None:
        """A button under a reply. Returns a reply to show, or None when the click was already counted."""
        turn = self.memory.turn(event.turn_id)
        if turn is None:
            return Reply(text="I couldn't find the message that button belongs to; it may be from an old conversation.",
                         route=Route.OTHER)
        if event.action is Action.READ_SOURCE:
            return self._read_source(event.source_id, list(turn.sources or []))
        if event.action in CHECKIN_ACTIONS:
            if self.checkins is None:
                return Reply(text="Check-ins are turned off here.", route=Route.OTHER, turn_id=turn.id)
            if not self.memory.add_feedback(event.turn_id, event.action.value, event.user_id):
                return None
            return self.checkins.handle_action(event)
        if not self.memory.add_feedback(event.turn_id, event.action.value, event.user_id):
            return None
        if event.action is Action.HELPED:
            return Reply(text="Glad it helped. Tell me how it goes with your class.", route=Route.OTHER, turn_id=turn.id)
        if event.action is Action.NOT_QUITE:
            return Reply(
                text="Thanks for saying so. What's missing: is it a different year group, subject, or goal? "
                     "Tell me a little more and I'll look again.", route=Route.COACH, turn_id=turn.id)
        if event.action is Action.COACH_ME:
            return self._coach_instead(turn.text, event.memory_key, turn.id)
        decision = self.triage.for_action(event.action)
        route = decision.route
        history = self.memory.history(event.memory_key)
        message = InboundMessage(platform=event.platform, conversation_id=event.conversation_id,
                                 thread_id=event.thread_id, user_id=event.user_id, text=turn.text,
                                 platform_ref=event.platform_ref)
        opened = self._escalate(message, turn.text, decision, history)
        handoff = Handoff(target=opened.target, reason=opened.reason, ticket=opened.ticket,
                          urgent=opened.urgent, created=opened.created)
        if route is Route.HELPDESK:
            text = replies.helpdesk_reply(turn.text, decision, opened.ticket, opened.created, self.settings,
                                          live=platforms.can(event.platform, Capability.TELL_LATER))
        else:
            text = replies.integrator_reply(decision, opened.ticket, opened.created, self.settings,
                                            reached=self._reached(decision))
        return Reply(text=text, route=route, handoff=handoff, turn_id=turn.id)

    # -- handoff desk ----------------------------------------------------------------

    def escalation_action(self, escalation_id: int, action: str, actor: Actor, note: str | None = None) -> ActionResult:
        """Claim or resolve an escalation (integrators' channel buttons, `coach handoffs claim`).

        `note` (resolve only) is the resolver's answer; it is masked, then stored on the escalation,
        where `coach kb draft-from-escalation` finds it.

        `actor` is who clicked, as the platform names them; the access policy (settings.access)
        decides whether they may act on this handoff, the same on every platform. The result
        carries the new text for the integrators' channel message when something changed, or
        why nothing did. The teacher is told through the listener, which records an outbox row
        for their platform so the notice survives a restart.
        """
        return escalation_action(self.settings, self.escalations, self.memory, self.listener,
                                 escalation_id, action, actor, note)

    def escalation_check(self, escalation_id: int, action: str, actor: Actor) -> ActionResult | None:
        """None when `actor` may claim or resolve the escalation now, else why not (nothing is changed).

        A platform asks this before it collects a resolution note, so a refused person is told at once.
        """
        return escalation_check(self.settings, self.escalations, escalation_id, action, actor)

    # -- parts -------------------------------------------------------------------------------

    def _recorded(self, message: InboundMessage) -> Reply | None:
        """The reply already recorded for this platform message id, rebuilt; None for a new message."""
        turn_id = message_turn_id(message)
        turn = self.memory.turn(turn_id) if turn_id else None
        if turn is None:
            return None
        route = Route(turn.route)
        handoff = None
        if route in (Route.HELPDESK, Route.INTEGRATOR):
            row = self.escalations.open_for(turn.memory_key, route.value)
            if row is not None:
                first = bool(row.details) and (row.details[0] or {}).get("message_id") == turn_id
                handoff = Handoff(target=row.target, reason=row.reason, ticket=row.ticket, urgent=row.urgent,
                                  created=first)
        log.info("turn %s: message %s seen before; the recorded reply is returned", turn.id, message.message_id)
        return Reply(text=turn.reply, route=route, sources=[Source(id=sid, title=sid) for sid in turn.sources or []],
                     actions=list(COACH_ACTIONS) if route is Route.COACH else [], handoff=handoff,
                     turn_id=turn.id, composer=turn.composer)

    def _context(self, history: Sequence[PastTurn], memory_key: str) -> ConversationContext:
        """What triage needs of the conversation: coaching so far, the last route, an open escalation."""
        last = Route(history[-1].route) if history else None
        open_category = None
        if last is Route.INTEGRATOR:
            row = self.escalations.open_for(memory_key, Route.INTEGRATOR.value)
            open_category = Category(row.category) if row is not None and row.category in set(Category) else None
        return ConversationContext(coach_turns=sum(1 for t in history if t.route == Route.COACH.value),
                                   last_route=last, open_category=open_category)

    def _coach_instead(self, text: str, memory_key: str, turn_id: str) -> Reply:
        """"Coach me on it instead": the message a router sent elsewhere, answered as coaching."""
        local_only = self.escalations.sensitive(memory_key)
        result = self._retrieve(text, [], local_only=local_only)
        composition = self._compose(text, result, [], memory_key, local_only=local_only)
        return Reply(text=composition.text, route=Route.COACH, sources=self._sources(result, composition),
                     actions=[Action.HELPED, Action.NOT_QUITE, Action.TALK_TO_PERSON], turn_id=turn_id,
                     composer=composition.composer)

    def _read_source(self, source_id: str | None, offered: list[str]) -> Reply:
        """"Read it" under a source: the entry's note, in chat. Only a source that reply offered."""
        entry = self.retriever.store.get(source_id) if source_id and source_id in offered else None
        if entry is None:
            return Reply(text="I couldn't find that resource any more; it may have been removed or renamed. "
                              "What would you like to look at instead?", route=Route.COACH)
        text = replies.source_note(entry.title, entry.body, self.settings.reply.max_note_chars)
        return Reply(text=text, route=Route.COACH)

    @staticmethod
    def _sources(result: SearchResult, composition: Composition) -> list[Source]:
        by_id = {h.entry.id: h for h in result.hits}
        out = []
        for sid in composition.sources:
            hit = by_id[sid]
            link = hit.entry.first_link()
            out.append(Source(id=sid, title=hit.entry.title, url=str(link.url) if link else None,
                              score=round(hit.score, 4)))
        return out

    def _reached(self, decision: Decision) -> list[str]:
        """The channels this handoff is being delivered to; a safeguarding concern's are the lead's alone."""
        reaches = getattr(self.listener, "reaches", None)
        if reaches is None:  # replay, or no delivery target at all: nobody is told
            return []
        return list(reaches("safeguarding" if decision.category is Category.SAFEGUARDING else decision.route.value))

    def _local_triage(self) -> Triage:
        """Triage without the model's help (model-assisted triage wraps the local router as `.triage`)."""
        return getattr(self.triage, "triage", self.triage)

    def _retrieve(self, text: str, history: Sequence[PastTurn], vector: np.ndarray | None = None, *,
                  local_only: bool = False) -> SearchResult:
        # A follow-up ("and for year 2?") is read with the coaching turn before it.
        context = ""
        boost: dict[str, float] = {}
        topic = _coaching_topic(history)
        if topic:
            context = " ".join(t.text for t in topic)
            boost = {sid: 0.03 for sid in topic[0].sources}
            vector = None  # the query vector must include the context
        retriever = self.retriever
        if self.settings.embeddings == "openai" and local_only:
            # Remote embeddings would send the conversation out: BM25 over the same store instead.
            # (Otherwise the embedder itself masks what it sends: adapters/wiring.make_embedder.)
            retriever, vector = self._lexical_retriever(), None
        result = retriever.search(text, context=context, k=5, boost=boost, vector=vector,
                                       context_weight=1.0 if context and len(text.split()) <= SHORT_FOLLOW_UP else None)
        if result.confidence < self.settings.retrieval.min_confidence:
            log.info("low retrieval confidence %.2f for %r", result.confidence, text[:80])
        return result

    def _lexical_retriever(self) -> Retriever:
        if self._lexical is None:
            r = self.retriever
            self._lexical = Retriever(r.store, mode="lexical", lexical_weight=r.lexical_weight,
                                      context_weight=r.context_weight, glossary=r.glossary, late_interaction=False)
        return self._lexical

    def _compose(self, text: str, result: SearchResult, history: Sequence[PastTurn], memory_key: str | None = None,
                 *, local_only: bool = False, vector: np.ndarray | None = None) -> Composition:
        request = CoachingRequest(
            text=text, hits=result.hits,
            confident=result.confidence >= self.settings.retrieval.min_confidence,
            history=history, max_words=self.settings.reply.max_words,
            max_sources=self.settings.retrieval.max_sources, memory_key=memory_key, message_vector=vector,
        )
        if local_only:
            # The composer may be a remote model; a concern's conversation is answered from templates.
            return self.fallback.compose(request)
        try:
            return self.composer.compose(request)
        except Exception:  # the teacher always gets an answer
            log.exception("composer %s failed; the template composer answers", getattr(self.composer, "name", "?"))
            return self.fallback.compose(request)

    def _escalate(self, message: InboundMessage, text: str, decision: Decision,
                  history: Sequence[PastTurn]) -> Opened:
        urgent = decision.urgent or (decision.route is Route.HELPDESK and replies.is_urgent(text))
        opened = self.escalations.open_or_add(
            target=decision.route.value, reason=decision.reason, category=decision.category, urgent=urgent,
            memory_key=message.memory_key, platform=message.platform, user_id=message.user_id,
            summary=text[:200], detail={"text": text, "at": message.received_at.isoformat(),
                                        "message_id": message_turn_id(message)},
            # Where to tell the teacher later, when a person claims or resolves it.
            reply_to={"conversation_id": message.conversation_id, "thread_id": message.thread_id,
                      "user_name": message.user_name,
                      "platform_ref": message.platform_ref.model_dump(mode="json", exclude_none=True)},
        )
        if self.listener is not None:
            try:
                self.listener.escalated(EscalationEvent(opened, text, decision, history, message.platform,
                                                        message.memory_key))
            except Exception:  # the delivery rows were committed with the record; the worker's recovery covers the rest
                log.exception("escalation %s recorded; waking delivery failed, recovery delivers it", opened.ticket)
        return opened


def message_turn_id(message: InboundMessage) -> str | None:
    """A turn id fixed by the platform's message id, so the same message is recorded and answered once."""
    if not message.message_id:
        return None
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"coach:{message.memory_key}:{message.message_id}"))
