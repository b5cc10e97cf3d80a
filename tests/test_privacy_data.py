"""Data at rest: private file modes, export then erase of one teacher, retention by kind, the audit log."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, select, update

from adapters.teams.references import ReferenceStore
from adapters.wiring import check_data_dir
from bot.handoff.escalations import EscalationRow, Escalations
from bot.handoff.outbox import Outbox, OutboxRow
from bot.settings import OutboxSettings, RetentionSettings, Settings
from bot.state.database import StateDB
from bot.state.inbound import InboundQueue, ProcessedEvents
from bot.state.memory import ConversationMemory, FeedbackRow, TurnRow
from bot.state.privacy import PrivacyAuditRow, PrivacyStore, subject_digest
from bot.state.usage import UsageLog

from conftest import CONFIG_DIR

TEACHER, OTHER = "U0ERASEME", "U0KEEPME"
TEXTS = {TEACHER: ["my year 4s keep losing their padlet passwords, what can I do?",
                   "can I talk to a real person about the padlet wall please"],
         OTHER: ["how could my class use flip for book reviews?",
                 "I'd like someone to help me plan a whole unit on coding"]}
EVENT = {TEACHER: "slack:Ev01A", OTHER: "slack:Ev02B"}  # Slack event ids: they name no one
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- file modes ----------------------------------------------------------------------------------

def test_data_dir_is_created_0700_and_the_database_0600(tmp_path):
    settings = Settings(data_dir=tmp_path / "fresh" / "data", config_dir=CONFIG_DIR)
    check_data_dir(settings.data_dir)
    db = StateDB(settings.state_url)
    ConversationMemory(db).record(memory_key="k", platform="console", user_id="u", text="hello there", route="coach",
                                  reason="", reply="hi", sources=[], confidence=0.0, composer="template")
    assert mode(settings.data_dir) == 0o700
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (settings.data_dir / name).exists():
            assert mode(settings.data_dir / name) == 0o600, name


def test_a_database_url_pointing_into_a_shared_folder_leaves_the_folder_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    StateDB(f"sqlite:///{shared / 'coach.db'}")
    assert mode(shared) == 0o755 and mode(shared / "coach.db") == 0o600


def test_an_existing_world_readable_data_dir_and_database_are_tightened(tmp_path):
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "state.db").touch()
    (data / "state.db").chmod(0o644)
    StateDB(f"sqlite:///{data / 'state.db'}")
    check_data_dir(data)
    assert mode(data) == 0o700 and mode(data / "state.db") == 0o600


# -- one teacher's data --------------------------------------------------------------------------

def fill(db: StateDB) -> dict[str, list[str]]:
    """Two teachers' data in every table the coach has; returns the turn ids by teacher."""
    memory, escalations = ConversationMemory(db), Escalations(db)
    outbox = Outbox(db, (), OutboxSettings())
    refs, usage = ReferenceStore(db), UsageLog(db)
    turns: dict[str, list[str]] = {}
    for user, texts in TEXTS.items():
        key = f"slack:D{user}"
        turns[user] = [memory.record(memory_key=key, platform="slack", user_id=user, text=t, route="coach",
                                     reason="", reply=f"Coach answer {i} for {user[-6:]}", sources=["e1"],
                                     confidence=0.5, composer="template") for i, t in enumerate(texts)]
        memory.add_feedback(turns[user][0], "helped", user)
        opened = escalations.open_or_add(target="integrator", reason="the teacher asked for a person",
                                         category="human_request", urgent=False, memory_key=key, platform="slack",
                                         user_id=user, summary=texts[1][:200], detail={"text": texts[1]},
                                         reply_to={"conversation_id": f"D{user}", "user_name": f"Name {user}"})
        row = escalations.get(opened.id)
        outbox.enqueue(row, "opened", 1, ["webhook"], {"context": {"teacher": f"slack user {user}",
                                                                   "transcript": [{"text": texts[1]}]}})
        outbox.enqueue(row, "claimed", 1, ["teacher:slack"], {"notice": {"user_id": user, "text": "picked up"}})
        InboundQueue(db).record(EVENT[user], {"event": {"user": user, "text": texts[0], "channel": f"D{user}"}})
        ProcessedEvents(db).claim(EVENT[user])
        usage.record(memory_key=key, model="gpt-4o-mini", prompt_tokens=100, completion_tokens=20, purpose="reply")
        refs.save(f"user:{user}", {"user": {"id": user, "name": f"Name {user}"}, "conversation": {"id": f"D{user}"}},
                  kind="user", label=f"Name {user}")
        refs.save_card(turns[user][0], f"act-{user}", f"D{user}", {"body": [{"text": f"reply for {user}"}]})
    return turns


def rows_mentioning(db: StateDB, needles: list[str]) -> dict[str, list[str]]:
    """Table by table, every row in which any needle appears (the id as a value, or a text)."""
    meta = MetaData()
    meta.reflect(db.engine)
    found: dict[str, list[str]] = {}
    with db.engine.connect() as conn:
        for name, table in meta.tables.items():
            for r in conn.execute(select(table)):
                blob = json.dumps([str(v) for v in r._mapping.values()], ensure_ascii=False)
                hits = [n for n in needles if n in blob]
                if hits:
                    found.setdefault(name, []).append(",".join(hits))
    return found


def table_counts(db: StateDB) -> dict[str, int]:
    meta = MetaData()
    meta.reflect(db.engine)
    with db.engine.connect() as conn:
        return {name: len(conn.execute(select(t)).all()) for name, t in meta.tables.items()}


RESOLUTION_NOTE = "Pointed them at the shared-wall entry and the two-minute interview routine."


def export_then_erase(db: StateDB) -> None:
    fill(db)
    store = PrivacyStore(db)
    # The integrator's resolution note is stored on the teacher's escalation row: exported with it, erased with it.
    escalations = Escalations(db)
    mine = escalations.open_for(f"slack:D{TEACHER}", "integrator")
    assert escalations.resolve(mine.id, "slack:U0INTEGR8", "Sam", note=RESOLUTION_NOTE) is not None
    needles = [TEACHER, *TEXTS[TEACHER], RESOLUTION_NOTE]
    before = rows_mentioning(db, needles)
    # Every kind of table holds something of the teacher before: the check below could fail.
    for table in ("turns", "feedback", "escalations", "outbox", "inbound_events", "teams_conversation_refs",
                  "teams_reply_cards"):
        assert table in before, table
    kept_before = rows_mentioning(db, [OTHER, *TEXTS[OTHER]])

    exported = store.export(TEACHER, actor="cli:test").as_json()
    assert json.loads(json.dumps(exported, default=str))  # serialisable as it is
    tables = exported["tables"]
    assert {r["text"] for r in tables["turns"]} == set(TEXTS[TEACHER])
    assert [r["user_id"] for r in tables["feedback"]] == [TEACHER]
    assert len(tables["escalations"]) == 1 and len(tables["outbox"]) == 2
    assert tables["escalations"][0]["resolution_note"] == RESOLUTION_NOTE
    assert len(tables["inbound_events"]) == 1 and len(tables["llm_usage"]) == 1
    assert [r["key"] for r in tables["processed_events"]] == [EVENT[TEACHER]]
    assert len(tables["teams_conversation_refs"]) == 1 and len(tables["teams_reply_cards"]) == 1
    assert OTHER not in json.dumps(exported, default=str)

    report = store.erase(TEACHER, actor="cli:test")
    assert report.residual == {}
    assert report.counts == exported["counts"]
    left = rows_mentioning(db, needles)
    assert left == {}, f"still holding the erased teacher: {left}"
    # The other teacher's rows are all still there.
    assert rows_mentioning(db, [OTHER, *TEXTS[OTHER]]) == kept_before

    with db.session() as s:
        audit = list(s.scalars(select(PrivacyAuditRow).order_by(PrivacyAuditRow.id)).all())
    assert [a.action for a in audit] == ["export", "erase"]
    assert all(a.subject == subject_digest(TEACHER) and a.actor == "cli:test" for a in audit)
    assert audit[1].counts["turns"] == 2 and audit[1].counts["outbox"] == 2


def test_export_then_erase_leaves_nothing_of_the_teacher_on_sqlite(tmp_path):
    export_then_erase(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))


@pytest.mark.server
def test_export_then_erase_leaves_nothing_of_the_teacher_on_postgresql(postgres_server):
    db = StateDB(postgres_server.create_database())
    try:
        export_then_erase(db)
    finally:
        db.engine.dispose()


def test_the_cli_exports_and_erases_with_an_audit_trail(tmp_path):
    from adapters.cli import main

    data = tmp_path / "data"
    db = StateDB(f"sqlite:///{check_data_dir(data) or data / 'state.db'}")
    fill(db)
    env = {"COACH_DATA_DIR": str(data), "COACH_CONFIG_FILE": str(CONFIG_DIR / "coach.yaml")}
    runner = CliRunner()
    out = runner.invoke(main, ["privacy", "export", "--user", TEACHER], env=env)
    assert out.exit_code == 0, out.output
    exported = json.loads(out.stdout)
    assert exported["counts"]["turns"] == 2 and exported["user_id"] == TEACHER
    erased = runner.invoke(main, ["privacy", "erase", "--user", TEACHER, "--yes"], env=env)
    assert erased.exit_code == 0, erased.output
    assert rows_mentioning(db, [TEACHER, *TEXTS[TEACHER]]) == {}
    audit = runner.invoke(main, ["privacy", "audit"], env=env)
    assert "erase" in audit.stdout and "export" in audit.stdout and TEACHER not in audit.stdout


# -- retention -----------------------------------------------------------------------------------

def aged(db: StateDB, model: type, days: float, *where: object, **columns: str) -> None:
    """Move matching rows `days` into the past (each named column)."""
    when = NOW - timedelta(days=days)
    with db.session() as s:
        s.execute(update(model).where(*where).values(**{c: when for c in columns.values()}))


def test_purge_removes_what_is_past_retention_and_nothing_else(tmp_path):
    purge_by_kind(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))


@pytest.mark.server
def test_purge_removes_what_is_past_retention_and_nothing_else_on_postgresql(postgres_server):
    db = StateDB(postgres_server.create_database())
    try:
        purge_by_kind(db)
    finally:
        db.engine.dispose()


def purge_by_kind(db: StateDB) -> None:
    turns = fill(db)
    retention = RetentionSettings(turns_days=30, inbound_days=7, feedback_days=60, resolved_escalations_days=90,
                                  outbox_days=14)
    store = PrivacyStore(db, retention)
    esc = Escalations(db)
    old_esc, new_esc = (esc.open_for(f"slack:D{u}", "integrator") for u in (TEACHER, OTHER))
    # The teacher's data is old enough to go, kind by kind; the other teacher's just young enough to stay.
    aged(db, TurnRow, 31, TurnRow.user_id == TEACHER, a="created_at")
    aged(db, TurnRow, 29, TurnRow.user_id == OTHER, a="created_at")
    aged(db, FeedbackRow, 61, FeedbackRow.user_id == TEACHER, a="created_at")
    aged(db, FeedbackRow, 59, FeedbackRow.user_id == OTHER, a="created_at")
    for e in (old_esc, new_esc):  # resolved with a note, which goes (or stays) with its row
        assert esc.resolve(e.id, "slack:U0INTEGR8", "Sam", note=f"{RESOLUTION_NOTE} ({e.id})") is not None
    aged(db, EscalationRow, 91, EscalationRow.id == old_esc.id, a="resolved_at", b="updated_at")
    aged(db, EscalationRow, 89, EscalationRow.id == new_esc.id, a="resolved_at", b="updated_at")
    # A delivered body of the other teacher's escalation, old enough to be emptied; one still pending.
    with db.session() as s:
        ids = s.scalars(select(OutboxRow.id).where(OutboxRow.escalation_id == new_esc.id).order_by(OutboxRow.id)).all()
        s.execute(update(OutboxRow).where(OutboxRow.id == ids[0]).values(status="delivered",
                                                                          delivered_at=NOW - timedelta(days=15)))
    from bot.state.inbound import InboundEventRow, ProcessedEventRow
    aged(db, InboundEventRow, 8, InboundEventRow.key == EVENT[TEACHER], a="created_at")
    aged(db, ProcessedEventRow, 8, ProcessedEventRow.key == EVENT[TEACHER], a="created_at")
    from bot.state.usage import UsageRow
    aged(db, UsageRow, 31, UsageRow.memory_key == f"slack:D{TEACHER}", a="created_at")
    from adapters.teams.references import ReplyCardRow
    before = table_counts(db)

    counts = store.purge(now=NOW)

    after = table_counts(db)
    assert counts == {"turns": 2, "teams_reply_cards": 1, "llm_usage": 1, "feedback": 1, "inbound_events": 1,
                      "processed_events": 1, "escalations": 1, "outbox_rows": 2, "outbox_bodies": 1}
    removed = {t: before[t] - after[t] for t in before if before[t] != after[t]}
    assert removed == {"turns": 2, "teams_reply_cards": 1, "llm_usage": 1, "feedback": 1, "inbound_events": 1,
                       "processed_events": 1, "escalations": 1, "outbox": 2, "privacy_audit": -1}
    with db.session() as s:
        assert set(s.scalars(select(TurnRow.id)).all()) == set(turns[OTHER])
        assert s.get(ReplyCardRow, turns[OTHER][0]) is not None
        bodies = {r.id: r.payload for r in s.scalars(select(OutboxRow)).all()}
    assert bodies[ids[0]] == {} and bodies[ids[1]] != {}  # delivered long ago: body gone; pending: kept
    assert rows_mentioning(db, [f"{RESOLUTION_NOTE} ({old_esc.id})"]) == {}
    assert set(rows_mentioning(db, [f"{RESOLUTION_NOTE} ({new_esc.id})"])) == {"escalations"}
    # A second purge finds nothing more; the next daily run is due a day later, not before.
    assert store.purge(now=NOW) == {}
    assert store.purge_if_due(now=NOW + timedelta(hours=23)) is None
    # A day on, the other teacher's 29-day-old turns are past 30 days too.
    assert store.purge_if_due(now=NOW + timedelta(hours=25))["turns"] == 2


def test_zero_days_keeps_everything(tmp_path):
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    fill(db)
    aged(db, TurnRow, 5000, a="created_at")
    store = PrivacyStore(db, RetentionSettings(turns_days=0, inbound_days=0, feedback_days=0,
                                               resolved_escalations_days=0, outbox_days=0))
    assert store.purge(now=NOW) == {}
    with db.session() as s:
        assert len(s.scalars(select(TurnRow.id)).all()) == 4


def test_purge_takes_check_ins_with_the_conversation_turns(tmp_path):
    from bot.checkins.store import CheckinRow

    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    with db.session() as s:
        for key, age in (("slack:Dold", 31), ("slack:Dnew", 29)):
            s.add(CheckinRow(memory_key=key, platform="slack", user_id=TEACHER, conversation_id=key[6:],
                             plan="try exit tickets with 9B", created_at=NOW - timedelta(days=age),
                             updated_at=NOW - timedelta(days=age)))
    counts = PrivacyStore(db, RetentionSettings(turns_days=30)).purge(now=NOW)
    assert counts.get("checkins") == 1
    with db.session() as s:
        assert s.scalars(select(CheckinRow.memory_key)).all() == ["slack:Dnew"]
