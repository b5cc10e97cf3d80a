"""Coaching cycles: plan detection, the school calendar, offers through Coach.handle, leased sending."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.checkins.calendar import Choice, SchoolCalendar
from bot.checkins.detect import WhenKind, detect_plan, parse_when
from bot.checkins.sending import CheckinDispatcher, CheckinMessage
from bot.checkins.store import CheckinStatus
from bot.models import Action, ActionEvent, InboundMessage
from bot.settings import CheckinSettings

TEAM_SET = Path(__file__).resolve().parents[1] / "eval" / "checkins" / "plans-team.jsonl"
UTC = timezone.utc


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingSender:
    """A CheckinSender that keeps what it was given (the Slack and Teams senders are tested end to end)."""

    platform = "slack"

    def __init__(self) -> None:
        self.sent: list[CheckinMessage] = []

    def send_checkin(self, message: CheckinMessage) -> dict[str, Any]:
        self.sent.append(message)
        return {"ts": str(len(self.sent))}


def test_team_set_is_balanced_and_the_detector_meets_the_bar() -> None:
    rows = [json.loads(line) for line in TEAM_SET.read_text().splitlines() if line.strip()]
    assert len(rows) >= 200
    plans = sum(r["plan"] for r in rows)
    assert plans >= 100 and len(rows) - plans >= 100
    tp = sum(1 for r in rows if r["plan"] and detect_plan(r["text"]))
    fp = sum(1 for r in rows if not r["plan"] and detect_plan(r["text"]))
    assert tp / (tp + fp) >= 0.9 and tp / plans >= 0.8


@pytest.mark.parametrize("text,plan,when", [
    ("I'll try exit tickets with 9B on Thursday", True, "thursday"),
    ("remind me", True, None),
    ("check in with me next week", True, "next week"),
    ("I tried exit tickets last week", False, None),
    ("we'll see", False, None),
    ("Should I try exit tickets on Thursday?", False, None),
    ("Remind me what SAMR stands for?", False, None),
    ("I was going to try it but the trip got in the way", False, None),
    ("Going to give the padlet a go after half term", True, "after half term"),
])
def test_plans_and_near_misses(text: str, plan: bool, when: str | None) -> None:
    found = detect_plan(text)
    assert (found is not None) is plan
    if found is not None:
        assert (found.when.label if found.when else None) == when


def test_plan_summary_is_in_the_second_person_without_the_day() -> None:
    plan = detect_plan("Great, I'm going to use the padlet wall with my year 5s tomorrow")
    assert plan is not None and plan.summary == "use the padlet wall with your year 5s"
    assert plan.when is not None and plan.when.kind is WhenKind.TOMORROW


def calendar(**overrides: Any) -> SchoolCalendar:
    return SchoolCalendar.from_settings(CheckinSettings(**overrides))


def test_after_the_named_day_lands_that_afternoon_in_local_time() -> None:
    cal = calendar(timezone="America/New_York")
    monday_morning = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # 09:00 in New York
    due = cal.due_at(Choice.AFTER_DAY, parse_when("thursday"), monday_morning)
    local = due.astimezone(cal.tz(None))
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-12-10", 15, 30)


def test_weekends_and_closures_are_skipped() -> None:
    cal = calendar(closures=["2026-12-14..2026-12-15"])
    thursday = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
    # a few days from Thursday is Sunday: Monday and Tuesday are closed, so Wednesday
    due = cal.due_at(Choice.FEW_DAYS, None, thursday)
    assert due.astimezone(cal.tz(None)).date().isoformat() == "2026-12-16"
    assert not cal.in_hours(datetime(2026, 12, 12, 12, 0, tzinfo=UTC))  # a Saturday noon
    assert not cal.in_hours(datetime(2026, 12, 9, 22, 0, tzinfo=UTC))  # a Wednesday night
    assert cal.next_window(datetime(2026, 12, 11, 22, 0, tzinfo=UTC)) == datetime(2026, 12, 16, 8, 30, tzinfo=UTC)


def test_after_half_term_is_the_first_school_day_back() -> None:
    cal = calendar(half_terms=["2027-02-15..2027-02-19"])
    due = cal.due_at(Choice.AFTER_DAY, parse_when("after half term"), datetime(2027, 2, 10, 10, 0, tzinfo=UTC))
    assert due == datetime(2027, 2, 22, 15, 30, tzinfo=UTC)


def test_bad_settings_name_themselves() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        calendar(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="2027-13-01"):
        calendar(closures=["2027-13-01"])


# -- through the coach ---------------------------------------------------------------------------

def msg(text: str, conversation: str, user: str = "U1", platform: str = "slack") -> InboundMessage:
    return InboundMessage(platform=platform, conversation_id=conversation, user_id=user, text=text)


def coach_then_plan(coach: Any, conversation: str, plan: str = "Thanks! I'll try exit tickets with 9B on Thursday",
                    user: str = "U1") -> Any:
    coach.handle(msg("how can I quickly check understanding at the end of a lesson?", conversation, user))
    return coach.handle(msg(plan, conversation, user))


def click(coach: Any, reply: Any, action: Action, conversation: str, user: str = "U1", tz: str | None = None) -> Any:
    return coach.handle_action(ActionEvent(platform="slack", conversation_id=conversation, user_id=user,
                                           turn_id=reply.turn_id, action=action, user_tz=tz))


def test_a_plan_after_coaching_gets_one_offer_per_conversation(coach) -> None:
    reply = coach_then_plan(coach, "D-offer")
    assert reply.followup is not None and reply.followup.when == "thursday"
    assert Action.CHECKIN_AFTER_DAY in reply.actions and "check in" in reply.text
    again = coach.handle(msg("and I'll try it with 8C on Friday too", "D-offer"))
    assert again.followup is None and Action.CHECKIN_AFTER_DAY not in again.actions


def test_no_offer_without_a_plan_or_outside_coaching(coach) -> None:
    assert coach_then_plan(coach, "D-none", plan="I tried exit tickets last week").followup is None
    assert coach.handle(msg("the projector in room 12 is broken, I'll try it again tomorrow", "D-help")).followup is None


def test_offers_can_be_turned_off_for_good(coach) -> None:
    reply = coach_then_plan(coach, "D-never-1", user="U-never")
    done = click(coach, reply, Action.CHECKIN_NEVER, "D-never-1", user="U-never")
    assert "won't offer" in done.text
    assert coach_then_plan(coach, "D-never-2", user="U-never").followup is None
    # asking outright still works
    asked = coach_then_plan(coach, "D-never-3", plan="ok, I will try the exit tickets on Monday. remind me", user="U-never")
    assert asked.followup is not None


def test_choice_schedules_and_stop_cancels(coach) -> None:
    reply = coach_then_plan(coach, "D-stop", user="U-stop")
    scheduled = click(coach, reply, Action.CHECKIN_AFTER_DAY, "D-stop", user="U-stop", tz="Europe/London")
    assert scheduled.text.startswith("Done: I'll check in on Thursday")
    assert click(coach, reply, Action.CHECKIN_AFTER_DAY, "D-stop", user="U-stop") is None  # counted once
    listing = coach.handle(msg("checkins", "D-elsewhere", user="U-stop"))
    assert "exit tickets with 9B" in listing.text
    assert coach.handle(msg("checkins", "D-other", user="U-someone-else")).text == "You have no check-ins coming up."
    stopped = coach.handle(msg("stop", "D-elsewhere", user="U-stop"))
    assert "cancelled 1 check-in" in stopped.text
    rows = coach.checkins.checkins.rows(user_id="U-stop")
    assert [r.status for r in rows] == [CheckinStatus.CANCELLED.value]


def test_someone_else_cannot_choose_for_the_teacher(coach) -> None:
    reply = coach_then_plan(coach, "C-thread", user="U-teacher")
    other = click(coach, reply, Action.CHECKIN_FEW_DAYS, "C-thread", user="U-nosy")
    assert "belongs to the teacher" in other.text


def test_due_checkin_is_sent_once_by_one_of_two_dispatchers_and_never_at_night(coach) -> None:
    service = coach.checkins
    clock = Clock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))  # Monday 10:00 London
    service.clock = clock
    service.checkins.clock = clock
    reply = coach_then_plan(coach, "D-send", user="U-send")
    click(coach, reply, Action.CHECKIN_AFTER_DAY, "D-send", user="U-send", tz="Europe/London")
    a, b = RecordingSender(), RecordingSender()
    first, second = CheckinDispatcher(service, [a], owner="one"), CheckinDispatcher(service, [b], owner="two")
    clock.now = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)  # Thursday, before the send time
    assert first.deliver_due().claimed == 0
    clock.now = datetime(2026, 12, 10, 22, 0, tzinfo=UTC)  # missed it: 22:00 is night, so it waits for morning
    assert first.deliver_due().postponed == 1 and not a.sent
    clock.now = datetime(2026, 12, 11, 8, 31, tzinfo=UTC)
    second.deliver_due()
    first.deliver_due()
    assert len(a.sent) + len(b.sent) == 1
    sent = (a.sent or b.sent)[0]
    assert sent.reply.text == "On Thursday you were going to try exit tickets with 9B. How did it go?"
    assert sent.reply.actions == [Action.WENT_WELL, Action.WENT_MIXED, Action.NOT_YET]
    answer = click(coach, sent.reply, Action.WENT_WELL, "D-send", user="U-send")
    assert answer.text.index("surprised you?") < answer.text.index("next step")
    [row] = service.checkins.rows(user_id="U-send")
    assert (row.status, row.outcome) == ("answered", "went_well")


def test_checkin_text_is_masked_before_it_leaves(coach) -> None:
    service = coach.checkins
    reply = coach_then_plan(coach, "D-mask", user="U-mask")
    click(coach, reply, Action.CHECKIN_AFTER_DAY, "D-mask", user="U-mask")
    [row] = service.checkins.rows(user_id="U-mask")
    # A plan in the teacher's words may name a child or carry contact details; they stay in the state database.
    row.plan = "try exit tickets with your student Jamie Lee and e-mail jamie.lee@example.org"
    text = service.checkin_text(row)
    assert text.startswith("On Thursday you were going to try exit tickets with your student ")
    assert "Jamie" not in text and "Lee" not in text and "example.org" not in text


# -- the command line and replay ------------------------------------------------------------------

def cli(args: list[str], data_dir: Path, stdin: str | None = None) -> Any:
    import os

    from click.testing import CliRunner

    from adapters.cli import main
    from tests.conftest import CONFIG_DIR

    blank = {k: None for k in os.environ if k.startswith(("COACH_", "SLACK_", "OPENAI_", "Microsoft"))}
    env = {**blank, "COACH_DATA_DIR": str(data_dir), "COACH_CONFIG_DIR": str(CONFIG_DIR),
           "COACH_ENV_FILE": str(data_dir / "no.env")}
    return CliRunner().invoke(main, args, env=env, input=stdin, catch_exceptions=False)


def test_checkins_list_and_cancel_on_the_command_line(coach, settings) -> None:
    reply = coach_then_plan(coach, "D-cli", user="U-cli")
    click(coach, reply, Action.CHECKIN_NEXT_WEEK, "D-cli", user="U-cli")
    listed = cli(["checkins", "list"], settings.data_dir)
    assert listed.exit_code == 0 and "U-cli" in listed.output and "scheduled" in listed.output
    [row] = coach.checkins.checkins.rows(user_id="U-cli")
    cancelled = cli(["checkins", "cancel", str(row.id)], settings.data_dir)
    assert cancelled.exit_code == 0 and f"Cancelled check-in {row.id}" in cancelled.output
    again = cli(["checkins", "cancel", str(row.id)], settings.data_dir)
    assert again.exit_code != 0 and "is cancelled" in again.output
    assert "No check-ins waiting" in cli(["checkins", "list"], settings.data_dir).output


def test_replay_records_an_offered_checkin_in_followup_and_sends_nothing(store, settings) -> None:
    cases = "\n".join(json.dumps(c) for c in [
        {"id": "a1", "conversation": "c1", "text": "how can I quickly check understanding at the end of a lesson?"},
        {"id": "a2", "conversation": "c1", "text": "Thanks! I'll try exit tickets with 9B on Thursday"},
        {"id": "b1", "conversation": "c2", "text": "I tried exit tickets last week"},
    ])
    result = cli(["replay", "-"], settings.data_dir, stdin=cases)
    out = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [o["followup"] for o in out] == [None, {"offered": True, "when": "thursday"}, None]
    from bot.checkins.store import Checkins
    from bot.state.database import StateDB

    [row] = Checkins(StateDB(settings.state_url)).rows()
    assert row.status == "offered" and row.due_at is None  # recorded, never scheduled


def test_a_teacher_sees_their_own_cycles_in_their_words_and_the_report_counts_them(coach, runtime) -> None:
    service = coach.checkins
    clock = Clock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    service.clock = service.checkins.clock = clock
    reply = coach_then_plan(coach, "D-mine", user="U-mine")
    click(coach, reply, Action.CHECKIN_FEW_DAYS, "D-mine", user="U-mine")
    sender = RecordingSender()
    clock.now = datetime(2026, 12, 10, 15, 45, tzinfo=UTC)  # a few days on: Thursday, after 15:30
    assert CheckinDispatcher(service, [sender]).deliver_due().sent == 1
    click(coach, sender.sent[0].reply, Action.WENT_WELL, "D-mine", user="U-mine")
    coach.handle(msg("the quiet ones actually answered for once", "D-mine", user="U-mine"))
    mine = coach.handle(msg("what have I worked on?", "D-new", user="U-mine")).text
    assert "you planned to try exit tickets with 9B. It went well." in mine
    assert "the quiet ones actually answered for once" in mine
    assert "We haven't set any goals" in coach.handle(msg("what have I worked on?", "D-x", user="U-other")).text
    in_channel = InboundMessage(platform="slack", conversation_id="C-staff", user_id="U-mine", is_direct=False,
                                text="what have I worked on?")
    assert "only show it in a direct message" in coach.handle(in_channel).text

    from bot.report.insights import build_insights

    insights = build_insights(runtime.db, runtime.store, runtime.settings)
    cycles = insights.cycles
    assert (cycles.offered, cycles.accepted, cycles.sent, cycles.completed) == (1, 1, 1, 1)
    assert cycles.outcomes["went_well"] == 1 and cycles.topics == [] and cycles.hidden_topics == 1
    assert insights.totals["messages"] == 3  # the question, the plan, the answer; not the check-in itself
