"""Coaching cycles in the core: offer a check-in, schedule the teacher's choice, send it once, coach the answer.

`CheckinService` is what `Coach` calls (offers, the choice and answer buttons, "stop", "my
check-ins"); sending due check-ins is bot/checkins/sending.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.checkins.calendar import Choice, SchoolCalendar
from bot.checkins.detect import Plan, WhenKind, detect_plan, parse_when
from bot.checkins.store import CheckinRow, Checkins, CheckinStatus, NewOffer, Outcome
from bot.models import Action, ActionEvent, Followup, InboundMessage, PastTurn, Reply, Route
from bot.privacy.masker import Masked, Masker
from bot.settings import CheckinSettings
from bot.state.database import aware, utcnow
from bot.state.memory import ConversationMemory

log = logging.getLogger(__name__)

CHOICE_ACTIONS = {Action.CHECKIN_AFTER_DAY: Choice.AFTER_DAY, Action.CHECKIN_FEW_DAYS: Choice.FEW_DAYS,
                  Action.CHECKIN_NEXT_WEEK: Choice.NEXT_WEEK}
OFFER_ACTIONS = frozenset({*CHOICE_ACTIONS, Action.CHECKIN_NO, Action.CHECKIN_NEVER})
OUTCOME_ACTIONS = {Action.WENT_WELL: Outcome.WENT_WELL, Action.WENT_MIXED: Outcome.MIXED, Action.NOT_YET: Outcome.NOT_YET}
CHECKIN_ACTIONS = frozenset({*OFFER_ACTIONS, *OUTCOME_ACTIONS})
CHECKIN_REASON = "checkin"
OUTCOME_WORDS = {Outcome.WENT_WELL.value: "It went well", Outcome.MIXED.value: "It was mixed",
                 Outcome.NOT_YET.value: "You didn't get to it yet"}

# Typed commands, the same words on every platform ("/coach checkins" in Slack arrives as "checkins").
_STOP = re.compile(r"^\s*(?:stop|stop (?:all )?(?:check[- ]?ins?|reminders)|cancel (?:all )?(?:my )?(?:check[- ]?ins?|reminders))"
                   r"\s*[.!]?\s*$", re.I)
_NEVER = re.compile(r"^\s*(?:no more check[- ]?ins?|don'?t (?:offer|ask) (?:me )?(?:again|check[- ]?ins?)|"
                    r"(?:turn off|stop offering) check[- ]?ins?)\s*[.!]?\s*$", re.I)
_MINE = re.compile(r"^\s*(?:what (?:have|did) i (?:been )?(?:work(?:ed|ing) on|tried|try)|what am i working on|"
                   r"my (?:coaching )?(?:cycles|goals|progress))\s*(?:with you|so far|lately|recently)?\s*[?.!]?\s*$", re.I)
_LIST = re.compile(r"^\s*(?:/coach\s+)?(?:check[- ]?ins?|my check[- ]?ins?|list (?:my )?check[- ]?ins?)\s*[?.!]?\s*$", re.I)


@dataclass(frozen=True)
class Offer:
    """What the coach adds to a reply that offers a check-in."""

    checkin_id: int
    line: str
    actions: list[Action]
    followup: Followup



class CheckinService:
    """The coach's side of coaching cycles."""

    def __init__(self, checkins: Checkins, calendar: SchoolCalendar, settings: CheckinSettings,
                 memory: ConversationMemory, *, integrator_name: str = "an integrator",
                 titles: Callable[[str], str | None] | None = None,
                 clock: Callable[[], datetime] = utcnow, masker: Masker | None = None) -> None:
        self.checkins = checkins
        self.calendar = calendar
        self.settings = settings
        self.memory = memory
        self.integrator_name = integrator_name
        self.titles = titles or (lambda _id: None)
        self.clock = clock
        self.masker = masker or Masker()

    # -- typed commands --------------------------------------------------------------------

    def command(self, message: InboundMessage, text: str) -> Reply | None:
        """"stop", "no more check-ins", "checkins": answered here, before triage; None for anything else."""
        if _STOP.match(text):
            cancelled = self.checkins.cancel_all(message.platform, message.user_id)
            if not cancelled and text.strip().lower().rstrip(".!") == "stop":
                return None  # a bare "stop" with nothing to cancel is an ordinary message
            return Reply(text=f"Done: I've cancelled {_count(cancelled, 'check-in')}. "
                              "I won't message you about them.", route=Route.OTHER)
        if _NEVER.match(text):
            self.checkins.opt_out(message.platform, message.user_id)
            cancelled = self.checkins.cancel_all(message.platform, message.user_id)
            extra = f" and cancelled {_count(cancelled, 'check-in')}" if cancelled else ""
            return Reply(text=f"Understood: I won't offer check-ins again{extra}. "
                              "Ask me to \"check in with me\" any time if you change your mind.", route=Route.OTHER)
        listing, mine = _LIST.match(text), _MINE.match(text)
        if (listing or mine) and not message.is_direct:
            # One teacher's cycle is theirs alone: never listed where colleagues can read it.
            return Reply(text="That's just for you, so I'll only show it in a direct message: "
                              "send it to me there.", route=Route.OTHER)
        if listing:
            return Reply(text=self.describe(message.platform, message.user_id), route=Route.OTHER)
        if mine:
            return Reply(text=self.worked_on(message.platform, message.user_id), route=Route.OTHER)
        return None

    def note_reply(self, history: Sequence[PastTurn], text: str) -> None:
        """A teacher's message right after a check-in is how it went, in their words: kept with the cycle."""
        if history and history[-1].route == Route.COACH.value:
            row = self.checkins.by_sent_turn(history[-1].id)
            if row is not None:
                self.checkins.note_reflection(row.id, text)

    def worked_on(self, platform: str, user_id: str, limit: int = 6) -> str:
        """The teacher's own recent cycles: the goal, whether they tried it, how it went, in their words."""
        rows = [r for r in self.checkins.rows(platform=platform, user_id=user_id, limit=limit * 2)
                if r.plan and r.status != CheckinStatus.CANCELLED.value][:limit]
        if not rows:
            return ("We haven't set any goals together yet. When you tell me what you'll try, "
                    "I can check in afterwards to see how it went.")
        lines = []
        for row in rows:
            created = aware(row.created_at) or utcnow()
            line = f"- {created.day} {created:%b}: you planned to {row.plan}"
            if row.outcome:
                line += f". {OUTCOME_WORDS[row.outcome]}"
            elif row.status in (CheckinStatus.SCHEDULED.value, CheckinStatus.SENDING.value):
                line += f". I'll check in {self._local(row)}"
            elif row.status == CheckinStatus.SENT.value:
                line += ". I asked how it went"
            line += "."
            if row.reflection:
                line += f" You said: \u201c{row.reflection[:200]}\u201d"
            lines.append(line)
        return "Here's what you've worked on with me (only you see this):\n" + "\n".join(lines)

    def describe(self, platform: str, user_id: str) -> str:
        """A teacher's own check-ins still to come, in their local time; only ever shown to them."""
        rows = self.checkins.rows(platform=platform, user_id=user_id, statuses=(CheckinStatus.SCHEDULED,))
        if not rows:
            return "You have no check-ins coming up."
        lines = [f"- {self._local(row)}: how it went when you were going to {row.plan or 'try what we talked about'}"
                 for row in sorted(rows, key=lambda r: aware(r.due_at) or utcnow())]
        return "Your check-ins coming up:\n" + "\n".join(lines) + "\n\nSay \"stop\" to cancel them all."

    # -- offers ----------------------------------------------------------------------------

    def maybe_offer(self, message: InboundMessage, text: str, route: Route, history: Sequence[PastTurn],
                    sources: Sequence[str], urgent: bool = False) -> Offer | None:
        """Offer a check-in when a coaching conversation's turn states a plan or asks for one.

        Never for a handoff or an urgent turn, never twice in a conversation, never to a teacher
        who turned offers off (unless they ask outright).
        """
        if not self.settings.enabled or urgent or route not in (Route.COACH, Route.OTHER):
            return None
        coached = route is Route.COACH or any(t.route == Route.COACH.value for t in history)
        if not coached:
            return None
        plan = detect_plan(text)
        if plan is None:
            return None
        if self.checkins.opted_out(message.platform, message.user_id) and not plan.asked:
            return None
        if self.checkins.offered_in(message.memory_key):
            return None
        topic_ids = list(sources) or next((t.sources for t in reversed(history) if t.route == Route.COACH.value), [])
        title = self.titles(topic_ids[0]) if topic_ids else None
        summary = self._concrete(plan, title, history)
        checkin_id = self.checkins.offer(NewOffer(
            memory_key=message.memory_key, platform=message.platform, user_id=message.user_id,
            conversation_id=message.conversation_id, thread_id=message.thread_id,
            platform_ref=message.platform_ref.model_dump(mode="json", exclude_none=True), plan=summary,
            when_label=plan.when.label if plan.when else None, topic=topic_ids[0] if topic_ids else None,
            sources=list(topic_ids)))
        if checkin_id is None:
            return None
        actions = ([Action.CHECKIN_AFTER_DAY] if plan.when else []) + [
            Action.CHECKIN_FEW_DAYS, Action.CHECKIN_NEXT_WEEK, Action.CHECKIN_NO, Action.CHECKIN_NEVER]
        after = f" on {plan.when.spoken}" if plan.when and plan.when.kind is WhenKind.WEEKDAY else (
            f" {plan.when.spoken}" if plan.when else "")
        line = (f"Want me to check in after you've tried it{after}? Choose when below; "
                "I only message during school hours, and \"stop\" cancels it.")
        return Offer(checkin_id, line, actions, Followup(offered=True, when=plan.when.label if plan.when else None))

    def offer_turn(self, offer: Offer, turn_id: str) -> None:
        """Link the offer to the turn whose buttons carry it."""
        self.checkins.set_offer_turn(offer.checkin_id, turn_id)

    # -- buttons ---------------------------------------------------------------------------

    def handle_action(self, event: ActionEvent) -> Reply | None:
        """A choice under an offer, or an answer under a sent check-in; None when it is not ours."""
        row = self.checkins.by_offer_turn(event.turn_id) or self.checkins.by_sent_turn(event.turn_id)
        if row is None:
            return Reply(text="I couldn't find that check-in; it may have been cancelled.", route=Route.OTHER)
        if row.user_id != event.user_id or row.platform != event.platform:
            return Reply(text="That check-in belongs to the teacher who planned it.", route=Route.OTHER)
        if event.action in OUTCOME_ACTIONS:
            return self._answered(row, OUTCOME_ACTIONS[event.action], event.turn_id)
        if event.action is Action.CHECKIN_NO:
            self.checkins.decline(row.id)
            return Reply(text="No problem. I hope it goes well; tell me about it any time.", route=Route.OTHER,
                         turn_id=event.turn_id)
        if event.action is Action.CHECKIN_NEVER:
            self.checkins.opt_out(row.platform, row.user_id)
            self.checkins.cancel_all(row.platform, row.user_id)
            return Reply(text="Understood: I won't offer check-ins again. Ask me to \"check in with me\" "
                              "any time if you change your mind.", route=Route.OTHER, turn_id=event.turn_id)
        choice = CHOICE_ACTIONS[event.action]
        when = parse_when(row.when_label) if row.when_label else None
        due = self.calendar.due_at(choice, when, self.clock(), event.user_tz or row.tz)
        tz = event.user_tz or row.tz
        if not self.checkins.schedule(row.id, choice.value, due, tz):
            return None
        if choice is Choice.AFTER_DAY and when is not None and when.kind in (WhenKind.TODAY, WhenKind.TOMORROW):
            # "tomorrow" said on Monday is Tuesday: the check-in names the day, even if it is sent later.
            self.checkins.set_when(row.id, f"{due.astimezone(self.calendar.tz(tz)):%A}".lower())
        local = due.astimezone(self.calendar.tz(tz))
        return Reply(text=f"Done: I'll check in on {local:%A} {local.day} {local:%B} at {local:%H:%M}. "
                          "Say \"stop\" any time to cancel.", route=Route.OTHER, turn_id=event.turn_id)

    def _answered(self, row: CheckinRow, outcome: Outcome, turn_id: str) -> Reply | None:
        if outcome is Outcome.NOT_YET:
            if not self.checkins.record_outcome(row.id, outcome):
                return None
            return Reply(text="That happens; lessons get eaten up. What got in the way? "
                              "Want me to check in again later?",
                         route=Route.COACH, turn_id=turn_id,
                         actions=[Action.CHECKIN_FEW_DAYS, Action.CHECKIN_NEXT_WEEK, Action.CHECKIN_NO])
        if not self.checkins.record_outcome(row.id, outcome):
            return None
        title = self.titles(row.topic) if row.topic else None
        if outcome is Outcome.WENT_WELL:
            text = ("Great to hear. First, a question to think about: what did students do or say that surprised you?\n\n"
                    "A next step: try it again with one change that asks more of them (students writing the "
                    "question, or explaining a classmate's answer)")
        else:
            text = ("Mixed is normal the first time. First, a question to think about: what did students do or say "
                    "that surprised you, and which part would you change?\n\n"
                    "A next step: keep the part that worked and change one thing next time")
        text += f"; \"{title}\" in the knowledge base has ideas." if title else "."
        text += f" If you'd like to talk it through, {self.integrator_name} can help."
        return Reply(text=text, route=Route.COACH, turn_id=turn_id, actions=[Action.TALK_TO_PERSON])

    # -- sending ---------------------------------------------------------------------------

    def checkin_text(self, row: CheckinRow) -> str:
        """"On Thursday you were going to try exit tickets with 9B. How did it go?", masked."""
        plan = row.plan or "try what we talked about"
        when = parse_when(row.when_label) if row.when_label else None
        if when is not None and row.choice == Choice.AFTER_DAY.value and when.kind is WhenKind.WEEKDAY:
            opening = f"On {when.spoken} you were going to {plan}."
        else:
            opening = f"Last time we talked, you were going to {plan}."
        # Student names and contact details never leave in a check-in; the teacher's own class
        # code ("9B") names no child and is what makes the question recognisable, so it stays.
        masked = self.masker.mask(f"{opening} How did it go?")
        classes = {k: v for k, v in masked.mapping.items() if k.startswith("[CLASS-")}
        return Masked(masked.text, classes).unmask(masked.text)

    def _local(self, row: CheckinRow) -> str:
        due = aware(row.due_at) or utcnow()
        local = due.astimezone(self.calendar.tz(row.tz))
        return f"{local:%A} {local.day} {local:%B} at {local:%H:%M}"

    @staticmethod
    def _concrete(plan: Plan, title: str | None, history: Sequence[PastTurn]) -> str:
        """The plan in words a check-in can repeat: "it" becomes what was talked about."""
        what = f"the idea from \u201c{title}\u201d" if title else "the idea we talked about"
        if plan.asked and not plan.summary:
            return f"try {what}"
        if plan.vague:
            return re.sub(r"\b(?:it|that|this)\b", what, plan.summary, count=1)
        return plan.summary


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
