"""Escalation records, handoff context and the outbox's state machine, on a real SQLite file."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update

from bot.handoff.escalations import EscalationRow, Escalations
from bot.handoff.context import HandoffContext, build_context
from bot.handoff.delivery import DeliveryError, OutboxItem, TeacherChannel
from bot.handoff.listener import OutboxListener
from bot.handoff.outbox import Outbox, OutboxRow
from bot.handoff.worker import OutboxWorker
from bot.settings import OutboxSettings, Settings
from bot.state.memory import ConversationMemory
from bot.models import PastTurn
from bot.state.database import StateDB

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
PLANTED = ("Jamie Lee", "jamie.lee@example.org", "07700 900123")


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path}/state.db")


def open_helpdesk(esc: Escalations, text: str = "the projector in room 12 shows no signal", key: str = "slack:C1:1.1",
                  urgent: bool = False):
    return esc.open_or_add(target="helpdesk", reason="technical fault (projector: no signal)", category="fault",
                           urgent=urgent, memory_key=key, platform="slack", user_id="U1", summary=text[:200],
                           detail={"text": text, "at": "2025-03-03T09:00:00+00:00"},
                           reply_to={"conversation_id": "C1", "thread_id": "1.1", "platform_ref": {"channel": "C1"}})


def turn(text: str, route: str, reply: str = "", sources: list[str] | None = None) -> PastTurn:
    return PastTurn(id=text[:8], text=text, route=route, reply=reply, sources=sources or [], confidence=0.5,
                    created_at=datetime.now(timezone.utc))


# -- escalation records ------------------------------------------------------------------------

def test_claim_and_resolve_change_state_once(db):
    esc = Escalations(db)
    opened = open_helpdesk(esc)
    claim = esc.claim(opened.id, "U9", "Sam")
    assert claim is not None and claim.previous == "open" and claim.row.status == "claimed"
    assert claim.row.claimed_by == "U9" and claim.row.claimer == "Sam" and claim.row.claimed_at is not None
    assert esc.claim(opened.id, "U8", "Kim") is None  # second click: nothing changes
    assert esc.get(opened.id).claimed_by == "U9"
    resolved = esc.resolve(opened.id, "U9")
    assert resolved is not None and resolved.previous == "claimed" and resolved.row.resolved_at is not None
    assert esc.resolve(opened.id, "U9") is None
    assert esc.claim(opened.id, "U9") is None  # resolved cannot be claimed
    # A new message in the same conversation after resolving opens a new ticket.
    again = open_helpdesk(esc)
    assert again.created and again.id != opened.id


def test_concurrent_claims_have_one_winner(db):
    esc = Escalations(db)
    opened = open_helpdesk(esc)
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        barrier.wait()
        results.append(Escalations(db).claim(opened.id, f"U{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert esc.get(opened.id).claimed_by == winners[0].row.claimed_by


def test_second_trigger_adds_to_the_open_escalation(db):
    esc = Escalations(db)
    first = open_helpdesk(esc)
    second = esc.open_or_add(target="helpdesk", reason="more details", category="fault", urgent=True,
                             memory_key="slack:C1:1.1", platform="slack", user_id="U1", summary="room 12",
                             detail={"text": "room 12, the Epson one"})
    assert not second.created and second.id == first.id and second.urgent
    row = esc.get(first.id)
    assert [d["text"] for d in row.details] == ["the projector in room 12 shows no signal", "room 12, the Epson one"]
    assert esc.add_detail(first.id, {"text": "asset tag 4411"}).details[-1]["text"] == "asset tag 4411"
    esc.resolve(first.id, "U9")
    assert esc.add_detail(first.id, {"text": "late"}) is None


def test_tickets_and_lists(db):
    esc = Escalations(db)
    h = open_helpdesk(esc)
    i = esc.open_or_add(target="integrator", reason="asked for a person", category="human_request", urgent=False,
                        memory_key="teams:a:1", platform="teams", user_id="29:ana", summary="a person please",
                        detail={"text": "can I talk to a person"})
    assert esc.get_by_ticket(h.ticket).id == h.id
    assert esc.get_by_ticket(f"h{h.id}").id == h.id
    assert esc.get_by_ticket(str(i.id)).id == i.id
    assert esc.get_by_ticket(f"H-{i.id:04d}") is None  # letter does not match the target
    assert esc.get_by_ticket("nonsense") is None
    esc.claim(i.id, "U1")
    assert [r.id for r in esc.list()] == [i.id, h.id]
    assert [r.id for r in esc.list(status="open")] == [h.id]
    assert [r.id for r in esc.list(status=None, target="integrator")] == [i.id]


def test_older_database_gains_the_new_columns(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    with engine.begin() as conn:  # the escalations table as the first version created it
        conn.execute(text(
            "CREATE TABLE escalations (id INTEGER PRIMARY KEY AUTOINCREMENT, target VARCHAR(20), reason VARCHAR(300), "
            "category VARCHAR(40), urgent BOOLEAN, status VARCHAR(20), claimed_by VARCHAR(200), memory_key VARCHAR(400), "
            "platform VARCHAR(20), user_id VARCHAR(200), summary TEXT, details JSON, created_at DATETIME, "
            "updated_at DATETIME, claimed_at DATETIME, resolved_at DATETIME)"))
    esc = Escalations(StateDB(url))
    opened = open_helpdesk(esc)
    assert esc.claim(opened.id, "U2", "Sam").row.claimed_by_name == "Sam"
    assert esc.get(opened.id).reply_to["conversation_id"] == "C1"


# -- handoff context ---------------------------------------------------------------------------

def test_helpdesk_context_has_what_a_technician_needs(db, tmp_path):
    esc = Escalations(db)
    opened = open_helpdesk(esc, "the projector in room 12 shows no signal and my class is waiting now!!", urgent=True)
    esc.add_detail(opened.id, {"text": "it's the Epson one, the screen says \"No Signal HDMI1\""})
    ctx = build_context(esc.get(opened.id), [], Settings(data_dir=tmp_path, config_dir=CONFIG_DIR))
    fields = dict(ctx.fields)
    assert ctx.title == "Projector in room 12 shows no signal and my class is waiting now"
    assert ctx.subject() == f"[Coach {opened.ticket}] URGENT: {ctx.title}"
    assert fields["Device"].lower().startswith("projector")
    assert fields["Room"] == "room 12"
    assert fields["On screen"] == "\u201cNo Signal HDMI1\u201d"
    assert fields["Urgency"].startswith("URGENT")
    assert ctx.summary.endswith("class waiting now.")
    assert [t for _, t in ctx.transcript][-1].startswith("it's the Epson one")


def test_integrator_context_reads_goal_and_what_the_coach_tried(db, tmp_path):
    esc = Escalations(db)
    history = [
        turn("I want my year 4 students to record podcasts about our town in English using Soundtrap", "coach",
             "What should listeners learn about the town? Who is the audience?", ["podcast-voices"]),
        turn("hmm not sure", "coach", "What would a great episode sound like to you?", ["student-voice"]),
    ]
    opened = esc.open_or_add(target="integrator", reason="the teacher asked for a person", category="human_request",
                             urgent=False, memory_key="k", platform="slack", user_id="U1", summary="",
                             detail={"text": "this isnt helping, can I talk to a real person please"})
    ctx = build_context(esc.get(opened.id), history, Settings(data_dir=tmp_path, config_dir=CONFIG_DIR))
    fields = dict(ctx.fields)
    assert "record podcasts about our town" in fields["Teacher's goal"]
    assert fields["Grade"] == "year 4"
    assert fields["Subject"] == "English"
    assert "Soundtrap" in fields["Tool"]
    assert "What should listeners learn about the town?" in fields["Coach already asked"]
    assert fields["Coach already offered"] == "podcast-voices, student-voice"
    assert ctx.title.startswith("Teacher asked for a person: I want my year 4 students")
    assert "2 coaching turn(s)" in ctx.summary
    assert ctx.why == "the teacher asked for a person"


def test_safeguarding_title_carries_no_words_of_the_disclosure(db, tmp_path):
    esc = Escalations(db)
    opened = esc.open_or_add(target="integrator", reason="possible safeguarding concern", category="safeguarding",
                             urgent=True, memory_key="k", platform="slack", user_id="U1", summary="",
                             detail={"text": "a student told me an adult online keeps asking her for photos"})
    ctx = build_context(esc.get(opened.id), [], Settings(data_dir=tmp_path, config_dir=CONFIG_DIR))
    assert "photos" not in ctx.subject() and "URGENT" in ctx.subject()


def test_transcript_masking_is_consistent_and_configurable(db, tmp_path):
    esc = Escalations(db)
    text_ = ("the projector in room 12 shows no signal. My student Jamie Lee has her talk next, "
             "call me on 07700 900123 or write to jamie.lee@example.org")
    opened = open_helpdesk(esc, text_)
    esc.add_detail(opened.id, {"text": "Jamie says the light is blinking orange"})
    row = esc.get(opened.id)
    masked = build_context(row, [], Settings(data_dir=tmp_path, config_dir=CONFIG_DIR), event="updated",
                           new_detail="Jamie says the light is blinking orange")
    blob = masked.as_text() + repr(masked.as_dict()) + masked.channel_text()
    for planted in (*PLANTED, "Jamie"):
        assert planted not in blob
    # One mapping for every field: the placeholder in the update is the one in the transcript.
    placeholder = masked.new_detail.split(" says")[0]
    assert placeholder.startswith("[NAME-")
    assert masked.transcript[-1] == ("Teacher", f"{placeholder} says the light is blinking orange")
    plain = build_context(row, [], Settings(data_dir=tmp_path, config_dir=CONFIG_DIR, handoff={"mask_transcripts": False}))
    assert all(p in plain.as_text() for p in PLANTED)
    assert HandoffContext.from_dict(masked.as_dict()) == masked  # survives the outbox payload round trip


# -- the outbox state machine -------------------------------------------------------------------

class Recorder:
    """A delivery channel that records, and fails as scripted."""

    def __init__(self, name: str = "rec", fail: list[DeliveryError] | None = None) -> None:
        self.name = name
        self.targets = frozenset({"helpdesk", "integrator"})
        self.events = frozenset({"opened", "updated", "claimed", "resolved"})
        self.fail = list(fail or [])
        self.delivered: list[OutboxItem] = []
        self.lock = threading.Lock()

    def deliver(self, item: OutboxItem) -> dict[str, Any]:
        with self.lock:
            if self.fail:
                raise self.fail.pop(0)
            self.delivered.append(item)
        return {"n": len(self.delivered)}

    def probe(self) -> str:
        return "recorder"


FAST = OutboxSettings(backoff_base_seconds=0.01, backoff_max_seconds=0.05, lease_seconds=30, poll_seconds=0.05)


def test_enqueue_is_idempotent_per_event_and_channel(db):
    esc = Escalations(db)
    row = esc.get(open_helpdesk(esc).id)
    outbox = Outbox(db, [Recorder("a"), Recorder("b")], FAST)
    assert len(outbox.enqueue(row, "opened", 1, ["a", "b"], {"context": {}})) == 2
    assert outbox.enqueue(row, "opened", 1, ["a", "b"], {"context": {}}) == []
    assert len(outbox.enqueue(row, "updated", 2, ["a"], {"context": {}})) == 1
    keys = [r.key for r in outbox.rows()]
    assert len(set(keys)) == 3 and all(k.startswith(f"coach-{row.id}-") for k in keys)


def test_retries_with_exponential_backoff_then_delivers(db):
    esc = Escalations(db)
    row = esc.get(open_helpdesk(esc).id)
    channel = Recorder(fail=[DeliveryError("HTTP 500"), DeliveryError("HTTP 502"), DeliveryError("refused")])
    clock = {"now": datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)}
    settings = OutboxSettings(backoff_base_seconds=10, backoff_max_seconds=25, lease_seconds=60)
    outbox = Outbox(db, [channel], settings, clock=lambda: clock["now"])
    outbox.enqueue(row, "opened", 1, ["rec"], {"context": {}})
    delays = []
    for _ in range(3):
        assert outbox.deliver_due().retrying == 1
        [r] = outbox.rows()
        assert r.status == "pending" and r.last_error
        delays.append((r.next_attempt_at.replace(tzinfo=timezone.utc) - clock["now"]).total_seconds())
        assert outbox.deliver_due().claimed == 0  # not due yet
        clock["now"] += timedelta(seconds=delays[-1] + 0.001)
    assert 8 <= delays[0] <= 10 and 16 <= delays[1] <= 20 and 20 <= delays[2] <= 25  # capped at the max
    assert outbox.deliver_due().delivered == 1
    [r] = outbox.rows()
    assert (r.status, r.attempts, r.last_error, r.receipt) == ("delivered", 4, None, {"n": 1})
    assert len(channel.delivered) == 1


def test_permanent_errors_and_max_attempts_stop_until_an_operator_retries(db):
    esc = Escalations(db)
    row = esc.get(open_helpdesk(esc).id)
    channel = Recorder(fail=[DeliveryError("HTTP 401", permanent=True)])
    outbox = Outbox(db, [channel], FAST)
    outbox.enqueue(row, "opened", 1, ["rec"], {"context": {}})
    assert outbox.deliver_due().failed == 1
    assert outbox.rows()[0].status == "failed" and outbox.rows()[0].last_error == "HTTP 401"
    assert outbox.deliver_due().claimed == 0
    assert outbox.retry() == 1
    assert outbox.deliver_due().delivered == 1

    capped = Outbox(db, [Recorder("cap", fail=[DeliveryError("x")] * 5)],
                    OutboxSettings(backoff_base_seconds=0.001, backoff_max_seconds=0.001, max_attempts=2))
    capped.enqueue(row, "opened", 1, ["cap"], {"context": {}})
    capped.drain(timeout=5)
    [r] = capped.rows(status="failed")
    assert r.attempts == 2 and r.channel == "cap"


def test_expired_lease_is_claimed_again_and_a_live_one_is_not(db):
    esc = Escalations(db)
    row = esc.get(open_helpdesk(esc).id)
    channel = Recorder()
    outbox = Outbox(db, [channel], FAST)
    outbox.enqueue(row, "opened", 1, ["rec"], {"context": {}})
    now = datetime.now(timezone.utc)
    with db.session() as s:  # as if another process claimed it and is still sending
        s.execute(update(OutboxRow).values(status="sending", attempts=1, lease_owner="other:1",
                                           lease_until=now + timedelta(seconds=60)))
    assert outbox.deliver_due().claimed == 0
    with db.session() as s:  # ... and now as if that process died a while ago
        s.execute(update(OutboxRow).values(lease_until=now - timedelta(seconds=1)))
    assert outbox.deliver_due().delivered == 1
    [r] = outbox.rows()
    assert r.status == "delivered" and r.attempts == 2 and r.lease_owner == outbox.owner


def test_two_drains_deliver_each_row_once(db):
    esc = Escalations(db)
    rows = [esc.get(open_helpdesk(esc, key=f"slack:C1:{i}").id) for i in range(25)]
    channel = Recorder()
    writer = Outbox(db, [channel], FAST)
    for row in rows:
        writer.enqueue(row, "opened", 1, ["rec"], {"context": {}})
    drains = [Outbox(StateDB(db.url), [channel], OutboxSettings(batch_size=3)) for _ in range(3)]
    threads = [threading.Thread(target=d.drain, kwargs={"timeout": 20}) for d in drains]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = [i.escalation_id for i in channel.delivered]
    assert sorted(delivered) == sorted(r.id for r in rows)  # every one, none twice
    assert {r.status for r in writer.rows()} == {"delivered"}


def test_recovery_writes_rows_a_crash_left_out(db, tmp_path):
    esc = Escalations(db)
    opened = open_helpdesk(esc)
    esc.add_detail(opened.id, {"text": "room 12, the Epson one"})
    channel = Recorder()
    outbox = Outbox(db, [channel], FAST)
    listener = OutboxListener(outbox, esc, ConversationMemory(db), Settings(data_dir=tmp_path, config_dir=CONFIG_DIR))
    assert listener.recover() == 2  # the opening and the one update
    assert listener.recover() == 0
    outbox.drain()
    assert [(i.event, i.seq) for i in channel.delivered] == [("opened", 1), ("updated", 2)]
    assert channel.delivered[1].payload["context"]["new_detail"] == "room 12, the Epson one"


def test_helpdesk_tickets_reach_the_integrators_when_no_helpdesk_target_exists(db, tmp_path):
    integrators_only = Recorder("ints")
    integrators_only.targets = frozenset({"integrator"})
    email = Recorder("email")
    email.targets = frozenset({"helpdesk"})
    email.events = frozenset({"opened", "updated"})
    settings = Settings(data_dir=tmp_path, config_dir=CONFIG_DIR)
    alone = OutboxListener(Outbox(db, [integrators_only], FAST), Escalations(db), ConversationMemory(db), settings)
    assert alone.route("helpdesk", "opened") == ["ints"]
    both = OutboxListener(Outbox(db, [integrators_only, email], FAST), Escalations(db), ConversationMemory(db), settings)
    assert both.route("helpdesk", "opened") == ["email"]
    assert both.route("helpdesk", "claimed") == ["ints"]  # e-mail does not take status changes
    assert both.route("integrator", "opened") == ["ints"]


def test_row_model_is_on_the_shared_base():
    from bot.state.database import Base

    assert {"escalations", "outbox"} <= set(Base.metadata.tables)
    assert EscalationRow.__table__.c.reply_to.nullable


# -- the transactional outbox ----------------------------------------------------------------------

class TeacherRecorder:
    """A TeacherNotifier for Slack that records what the teacher would be told."""

    platform = "slack"

    def __init__(self) -> None:
        self.told: list[Any] = []

    def notify_teacher(self, notice: Any) -> dict[str, Any]:
        self.told.append(notice)
        return {"ok": True}


def _wired(db: StateDB, tmp_path: Path, channel: Recorder, **outbox: Any):

    esc = Escalations(db)
    teacher = TeacherRecorder()
    box = Outbox(db, [channel, TeacherChannel(teacher)], FAST.model_copy(update=outbox))
    listener = OutboxListener(box, esc, ConversationMemory(db), Settings(data_dir=tmp_path, config_dir=CONFIG_DIR))
    esc.add_writer(listener.write)
    worker = OutboxWorker(box, on_start=listener.recover)
    listener.wake = worker.wake
    return esc, box, listener, worker, teacher


def test_escalation_and_its_delivery_rows_are_one_transaction(db, tmp_path):
    channel = Recorder()
    esc, box, _listener, _worker, _teacher = _wired(db, tmp_path, channel)
    opened = open_helpdesk(esc)
    assert [(r.escalation_id, r.event, r.channel) for r in box.rows()] == [(opened.id, "opened", "rec")]
    esc.add_detail(opened.id, {"text": "room 12"})
    esc.claim(opened.id, "slack:U9", "Sam")
    assert {(r.event, r.seq, r.channel) for r in box.rows()} == {
        ("opened", 1, "rec"), ("updated", 2, "rec"), ("claimed", 1, "rec"), ("claimed", 1, "teacher:slack")}

    # The outbox write failing rolls the escalation back with it: neither is recorded.
    def broken(*_args: Any) -> None:
        raise RuntimeError("outbox table unavailable")

    esc.add_writer(broken)
    with pytest.raises(RuntimeError):
        open_helpdesk(esc, key="slack:C2:2.2")
    assert esc.open_for("slack:C2:2.2", "helpdesk") is None
    with pytest.raises(RuntimeError):
        esc.resolve(opened.id, "slack:U9", "Sam")
    assert esc.get(opened.id).status == "claimed"
    assert {r.event for r in box.rows()} == {"opened", "updated", "claimed"}


def test_recovery_runs_while_the_worker_runs_newest_first_teacher_notices_included(db, tmp_path):
    channel = Recorder()
    esc, box, listener, worker, teacher = _wired(db, tmp_path, channel, recover_seconds=0.2)
    # Recorded by a process without the outbox as writer (an older version): no rows at all.
    bare = Escalations(db)
    old = open_helpdesk(bare, text="the printer in lab 2 is jammed", key="slack:C3:3.3")
    new = open_helpdesk(bare, text="the projector in room 12 shows no signal", key="slack:C4:4.4")
    worker.start()
    try:
        wait_until(lambda: len(channel.delivered) == 2)
        first = min(box.rows(), key=lambda r: r.id)
        assert first.escalation_id == new.id  # newest first
        # While the worker runs (no restart): a claim recorded without its rows, teacher notice included.
        bare.claim(new.id, "slack:U9", "Sam")
        wait_until(lambda: len(channel.delivered) == 3 and teacher.told)
        time.sleep(0.5)  # a few more recovery rounds: nothing is written or sent twice
    finally:
        worker.stop(timeout=5)
    assert sorted((i.escalation_id, i.event) for i in channel.delivered) == sorted(
        [(old.id, "opened"), (new.id, "opened"), (new.id, "claimed")])
    [notice] = teacher.told
    assert notice.ticket == new.ticket and notice.kind == "claimed" and "Sam" in notice.text
    assert listener.recover() == 0


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
