"""`Triage.decide`: the one place a message's route is decided.

Order: safeguarding (phrases, or the model's detector, or the router's top category: any
one escalates), the same for student-data incidents, an open concern in the conversation,
an explicit request for a person, frustration after coaching, a ticket number, small talk;
then the learned router. When the router's two likeliest routes are close, the decision
carries the other one as `alternative`, so the reply can offer it as a single tap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from bot.models import Action, Route
from bot.triage.categories import CONCERNS, REASONS, ROUTE_OF, Category
from bot.triage.model import ConcernScore, TriageModel
from bot.triage.rules import PhraseRules, RuleHits

# A message after a helpdesk or integrator reply that is this short and asks nothing is more
# detail for that ticket ("room 12, the Epson one"; "we're free Thursdays after 3").
FOLLOW_ON_WORDS = {Route.HELPDESK: 30, Route.INTEGRATOR: 60, Route.COACH: 8}


def prior_weights(expected: dict[Category, float]) -> dict[Category, float]:
    """Bayes' prior shift from training to the school's expected mix of messages.

    The router is trained with balanced class weights, so its probabilities read as if every
    category were equally common; multiplying by each category's expected share corrects
    that. Scaled so coaching keeps weight 1 (only ratios matter). Empty when no mix is given.
    """
    base = expected.get(Category.COACHING) or 1.0
    return {c: share / base for c, share in expected.items()}


class DecidedBy(StrEnum):
    """Which part of triage made the decision (shown by `coach triage explain`)."""

    RULE = "rule"
    DETECTOR = "detector"
    ROUTER = "router"
    MODEL = "model"  # the optional language model (bot.triage.model_assisted)
    CONVERSATION = "conversation"
    BUTTON = "button"


@dataclass(frozen=True)
class Decision:
    """Where a message goes and why."""

    route: Route
    category: Category
    reason: str
    urgent: bool = False
    decided_by: DecidedBy = DecidedBy.RULE
    alternative: Route | None = None
    scores: dict[Category, float] = field(default_factory=dict, compare=False)
    concerns: dict[Category, ConcernScore] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, category: Category, decided_by: DecidedBy, reason: str | None = None, **kw: Any) -> "Decision":
        """A decision for `category`, on its route, urgent when it is a concern."""
        kw.setdefault("urgent", category in CONCERNS)
        return cls(ROUTE_OF[category], category, reason or REASONS[category], decided_by=decided_by, **kw)


@dataclass(frozen=True)
class ConversationContext:
    """What triage needs of the conversation so far."""

    coach_turns: int = 0
    last_route: Route | None = None
    open_category: Category | None = None  # of an escalation still open in this conversation


class Triage:
    """Phrase rules, the learned router and the concern detectors, over one message embedding."""

    def __init__(self, rules: PhraseRules, model: TriageModel, embed: Callable[[str], np.ndarray], *,
                 shares_vector: Callable[[str], bool] | None = None) -> None:
        self.rules = rules
        self.model = model
        self.embed = embed
        # Routed categories re-weighted to the mix the school expects (`router.expected_mix`);
        # empty means the router's own probabilities.
        self.weights = prior_weights(rules.expected_mix)
        # True for a message whose `embed` vector is also the retriever's query vector (both read it with
        # the same glossary expansion), so one embedding serves both.
        self._shares_vector = shares_vector

    def retrieval_vector(self, text: str, vector: np.ndarray | None) -> np.ndarray | None:
        """`vector`, this message's triage embedding, when it is also the retriever's query vector; else None."""
        if vector is None or self._shares_vector is None or not self._shares_vector(text):
            return None
        return vector

    def decide(self, text: str, context: ConversationContext = ConversationContext(), *,
               vector: np.ndarray | None = None) -> Decision:
        """Route one message; `vector` is its embedding when the caller already has it."""
        if vector is None:
            vector = self.embed(text)
        hits = self.rules.match(text)
        scores = self.model.route_probabilities(vector, text)
        concerns = self.model.concern_scores(vector, text)
        extra: dict[str, Any] = {"scores": scores, "concerns": concerns}
        concern = self._concern(hits, scores, concerns, extra)
        if concern is not None:
            return concern
        if context.open_category in CONCERNS:
            # What follows a concern ("she deleted it straight after, do I still flag it?") stays with a person.
            return Decision.of(context.open_category, DecidedBy.CONVERSATION,
                               f"more about the open concern ({REASONS[context.open_category]})", **extra)
        if hits.human_request:
            return Decision.of(Category.HUMAN_REQUEST, DecidedBy.RULE, **extra)
        if hits.frustration and context.coach_turns >= self.rules.frustration_min_coach_turns:
            return Decision.of(Category.FRUSTRATION, DecidedBy.RULE, **extra)
        if hits.smalltalk:
            return Decision.of(Category.SMALLTALK, DecidedBy.RULE, **extra)
        return self._learned(text, hits, scores, context, extra)

    def _concern(self, hits: RuleHits, scores: dict[Category, float], concerns: dict[Category, ConcernScore],
                 extra: dict) -> Decision | None:
        top = max(scores, key=scores.__getitem__)
        for category, phrase in ((Category.SAFEGUARDING, hits.safeguarding),
                                 (Category.DATA_INCIDENT, hits.data_incident)):
            # Lesson framing quiets a phrase ("a lesson on cyberbullying"), never the model.
            if phrase and not (category is Category.SAFEGUARDING and hits.lesson_only):
                return Decision.of(category, DecidedBy.RULE, f"{REASONS[category]} ({phrase})", **extra)
            found = concerns[category]
            if found.fired or top is category:
                return Decision.of(category, DecidedBy.DETECTOR,
                                   f"{REASONS[category]} (score {max(found.score, scores[category]):.2f})", **extra)
        return None

    def routed_scores(self, scores: dict[Category, float], context: ConversationContext) -> dict[Category, float]:
        """The router's probabilities for routed categories, shifted to the expected mix and the conversation.

        After a coaching reply, coaching is `coaching_follow_up_weight` times likelier: "and for
        the quiet ones?" continues the conversation. Concerns are not here: they escalate on
        their own detectors, before this.
        """
        shifted = {c: p * self.weights.get(c, 1.0) for c, p in scores.items() if c not in CONCERNS}
        if context.last_route is Route.COACH:
            shifted[Category.COACHING] *= self.rules.coaching_follow_up_weight
        total = sum(shifted.values()) or 1.0
        return {c: p / total for c, p in shifted.items()}

    def _learned(self, text: str, hits: RuleHits, scores: dict[Category, float], context: ConversationContext,
                 extra: dict) -> Decision:
        scores = self.routed_scores(scores, context)
        by_route: dict[Route, float] = {}
        for c, p in scores.items():
            by_route[ROUTE_OF[c]] = by_route.get(ROUTE_OF[c], 0.0) + p
        ranked = sorted(by_route, key=by_route.__getitem__, reverse=True)
        route, runner_up = ranked[0], ranked[1]
        if hits.ticket and route in (Route.COACH, Route.OTHER):
            route = Route.HELPDESK if hits.ticket.upper().startswith("H") else Route.INTEGRATOR
            category = Category.FAULT if route is Route.HELPDESK else (context.open_category or Category.HUMAN_REQUEST)
            return Decision.of(category, DecidedBy.RULE, f"about ticket {hits.ticket.upper()}", **extra)
        follow_on = self._follow_on(text, route, context, extra)
        if follow_on is not None:
            return follow_on
        category = max((c for c in scores if ROUTE_OF[c] is route), key=scores.__getitem__)
        close = by_route[route] - by_route[runner_up] <= self.rules.alternative_margin
        return Decision.of(category, DecidedBy.ROUTER, f"{REASONS[category]} (p={by_route[route]:.2f})",
                           alternative=runner_up if close else None, **extra)

    def _follow_on(self, text: str, route: Route, context: ConversationContext, extra: dict) -> Decision | None:
        last = context.last_route
        if last not in FOLLOW_ON_WORDS or route is last or route is Route.INTEGRATOR:
            return None
        if last is Route.COACH:
            # "and for year 2?" after a coaching reply continues it, whatever it looks like alone.
            if route is Route.OTHER and len(text.split()) <= FOLLOW_ON_WORDS[last]:
                return Decision.of(Category.COACHING, DecidedBy.CONVERSATION, "a follow-up to the coaching", **extra)
            return None
        if len(text.split()) > FOLLOW_ON_WORDS[last] or text.rstrip().endswith("?"):
            return None
        if last is Route.HELPDESK:
            return Decision.of(Category.FAULT, DecidedBy.CONVERSATION, "more details for the open ticket", **extra)
        if context.open_category is not None:
            return Decision.of(context.open_category, DecidedBy.CONVERSATION, "more details for the open request",
                               **extra)
        return None

    def for_action(self, action: Action) -> Decision:
        """The decision a button stands for ("Talk to a person", "It's a tech problem")."""
        if action is Action.TALK_TO_PERSON:
            return Decision.of(Category.HUMAN_REQUEST, DecidedBy.BUTTON)
        if action is Action.TECH_PROBLEM:
            return Decision.of(Category.FAULT, DecidedBy.BUTTON, "the teacher reported a tech problem")
        raise ValueError(f"{action.value!r} is not a routing button")
