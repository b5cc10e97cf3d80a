"""Alembic migrations of the state database, on SQLite and a real PostgreSQL server.

The contract: the migrations are the only way a schema is made or changed; upgrading an empty
database yields exactly the schema the models describe (so a model change without a migration fails
here), a database at any earlier revision, or made before migrations, is upgraded with every row
kept, an upgrade that fails changes nothing, a database this install cannot bring to its schema
refuses to open (start-up stops with what, where and which revisions), and `coach db` reports and
upgrades.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Column, MetaData, Table, create_engine, inspect, text

import bot.state.database
from bot.handoff.escalations import Escalations
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB, StateError, alembic_config, schema_revision, upgrade_schema
from bot.state.inbound import ProcessedEvents
from coach_migrations.metadata import full_metadata

ROOT = Path(__file__).resolve().parents[1]

# Columns added to escalations after the first schema, in place: a school's older state.db lacks them.
LATER_ESCALATION_COLUMNS = {"claimed_by_name", "resolved_by", "resolved_by_name", "reply_to", "resolution_note"}
OLD_TABLES = ("turns", "feedback", "processed_events", "escalations")  # before the outbox, usage, Teams tables


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_server").create_database()


def schema_diffs(url: str) -> list:
    """What autogenerate would change to make the database match the models ([] = identical)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, full_metadata())
    finally:
        engine.dispose()


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(state_url: str) -> None:
    db = StateDB(state_url)
    current, head = schema_revision(db.engine)
    assert head is not None and current == head
    diffs = schema_diffs(state_url)
    assert diffs == [], ("the models and migrations/ disagree; add a revision with\n  .venv/bin/alembic -c "
                         f"migrations/alembic.ini revision --autogenerate -m '...'\n{diffs}")
    tables = set(inspect(db.engine).get_table_names())
    assert {"turns", "feedback", "processed_events", "escalations", "alembic_version"} <= tables


def _old_database(url: str) -> None:
    """The schema an earlier version made with create_all, with a school's rows in it."""
    models = full_metadata()
    old = MetaData()
    for name in OLD_TABLES:
        table = models.tables[name]
        keep = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=c.autoincrement)
                for c in table.columns if not (name == "escalations" and c.name in LATER_ESCALATION_COLUMNS)]
        Table(name, old, *keep)
    engine = create_engine(url)
    now = datetime(2025, 3, 3, 9, 15, tzinfo=timezone.utc)
    try:
        old.create_all(engine)
        with engine.begin() as conn:
            conn.execute(old.tables["turns"].insert(), [
                dict(id=f"t-{i}", memory_key="slack:C1:1.1", platform="slack", user_id="U1", text=f"question {i}",
                     route="coach", reason="", reply=f"answer {i}", sources=["podcast-voices"], confidence=0.6,
                     composer="template", created_at=now.replace(minute=i)) for i in range(5)])
            conn.execute(old.tables["feedback"].insert(), [
                dict(turn_id="t-1", action="helped", user_id="U1", created_at=now)])
            conn.execute(old.tables["processed_events"].insert(), [dict(key="slack:Ev001", created_at=now)])
            conn.execute(old.tables["escalations"].insert(), [
                dict(target="helpdesk", reason="projector", category="equipment", urgent=True, status="open",
                     claimed_by=None, memory_key="slack:C1:1.1", platform="slack", user_id="U1",
                     summary="projector in room 14", details=[{"text": "it shows no signal"}],
                     created_at=now, updated_at=now)])
    finally:
        engine.dispose()


def test_upgrade_adopts_a_database_made_before_migrations_and_keeps_every_row(state_url: str) -> None:
    _old_database(state_url)
    db = StateDB(state_url)  # what a bot process of the new version does at start-up
    assert schema_diffs(state_url) == []
    memory = ConversationMemory(db)
    assert [t.text for t in memory.history("slack:C1:1.1", limit=10)] == [f"question {i}" for i in range(5)]
    assert memory.add_feedback("t-1", "helped", "U1") is False  # the old click still counts, once
    assert ProcessedEvents(db).claim("slack:Ev001") is False  # and an old event is still a duplicate
    escalations = Escalations(db)
    [row] = escalations.list()
    assert (row.ticket, row.details, row.urgent) == ("H-0001", [{"text": "it shows no signal"}], True)
    claimed = escalations.claim(row.id, "U0TECH", "Sam Technician")  # a column the old schema lacked
    assert claimed is not None and claimed.row.claimer == "Sam Technician"


def test_upgrade_at_head_is_a_no_op_and_keeps_rows(state_url: str) -> None:
    db = StateDB(state_url)
    turn = ConversationMemory(db).record(memory_key="k", platform="teams", user_id="u", text="q", route="coach",
                                         reason="", reply="r", sources=[], confidence=0.4, composer="template")
    assert upgrade_schema(db.engine) == schema_revision(db.engine)[1]
    again = StateDB(state_url)
    assert ConversationMemory(again).turn(turn).text == "q"


def test_a_failed_upgrade_changes_nothing(state_url: str) -> None:
    # A table in the way that the baseline cannot complete (a required column is missing).
    engine = create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE turns (id VARCHAR(36) PRIMARY KEY, note VARCHAR(20))"))
        conn.execute(text("INSERT INTO turns (id, note) VALUES ('keep-me', 'school data')"))
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with pytest.raises(StateError, match=rf"cannot upgrade the state database at .+ from revision \(none: empty or "
                                         rf"made before migrations\) to {head}: .*lacks the required column"):
        StateDB(state_url)
    tables = set(inspect(engine).get_table_names())
    assert tables == {"turns"}  # no table half-created, no alembic_version claiming success
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM turns")).scalar() == "school data"
    engine.dispose()


def test_without_the_migrations_installed_nothing_is_created(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.state.database, "MIGRATIONS_PACKAGE", "coach_migrations_not_installed")
    with pytest.raises(StateError, match=r"migrations \(coach_migrations_not_installed\) are not installed"):
        StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    assert inspect(engine).get_table_names() == []  # no table made some other way
    engine.dispose()


EARLIER = [r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()][1:]


@pytest.mark.parametrize("revision", EARLIER)
def test_a_database_at_an_earlier_revision_upgrades_to_head_and_keeps_its_rows(state_url: str, revision: str) -> None:
    """What a school's database from an earlier release (the previous head first) meets at start-up."""
    engine = create_engine(state_url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    now = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO turns (id, memory_key, platform, user_id, text, route, reason, reply, sources, "
                          "confidence, composer, created_at) VALUES ('t-old', 'slack:C1:1.1', 'slack', 'U1', "
                          "'how do I share a padlet', 'coach', '', 'like this', '[]', 0.7, 'template', :now)"),
                     {"now": now})
    engine.dispose()
    assert schema_revision(StateDB(state_url, upgrade=False).engine)[0] == revision

    db = StateDB(state_url)  # what a bot process of this version does at start-up
    current, head = schema_revision(db.engine)
    assert current == head != revision
    assert schema_diffs(state_url) == []
    assert ConversationMemory(db).turn("t-old").text == "how do I share a padlet"


def test_nothing_makes_or_alters_a_table_outside_the_migrations() -> None:
    """create_all, a checkfirst create or an ALTER at run time would make a schema the migrations do not know."""
    pattern = re.compile(r"create_all|drop_all|checkfirst|(CREATE|ALTER)\s+TABLE", re.IGNORECASE)
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for folder in ("bot", "adapters", "knowledge")
             for path in sorted((ROOT / folder).rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_coach_db_current_and_upgrade(state_url: str, tmp_path: Path) -> None:
    from adapters.cli import main

    runner = CliRunner()
    env = {"COACH_DATABASE_URL": state_url, "COACH_DATA_DIR": str(tmp_path / "data"),
           "COACH_ENV_FILE": str(tmp_path / "no.env")}
    newest = ScriptDirectory.from_config(alembic_config()).get_current_head()
    before = runner.invoke(main, ["db", "current"], env=env)
    assert before.exit_code == 1, before.output
    assert "upgrade due" in before.output and f"newest {newest}" in before.output
    up = runner.invoke(main, ["db", "upgrade"], env=env)
    assert up.exit_code == 0, up.output
    assert f"upgraded from (none) to {newest}" in up.output
    after = runner.invoke(main, ["db", "current"], env=env)
    assert after.exit_code == 0 and f"revision {newest}, newest {newest} (up to date)" in after.output
    again = runner.invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert schema_diffs(state_url) == []


def test_coach_db_names_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    from adapters.cli import main
    from services import free_port

    url = f"postgresql+psycopg://coach:s3cret-pw@127.0.0.1:{free_port()}/coach"
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"COACH_DATABASE_URL": url,
                                                              "COACH_ENV_FILE": str(tmp_path / "no.env")})
    assert result.exit_code == 2
    assert "postgresql+psycopg://***@127.0.0.1" in result.output and "s3cret-pw" not in result.output


def test_a_database_a_newer_version_upgraded_refuses_to_open(state_url: str, tmp_path: Path) -> None:
    from adapters.cli import main
    from adapters.wiring import SOURCE_RECORD

    db = StateDB(state_url)
    head = schema_revision(db.engine)[1]
    ProcessedEvents(db).claim("slack:Ev1")
    with db.engine.begin() as conn:  # as if a newer release had added revision 9999 on top
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    db.engine.dispose()
    where = re.escape(state_url.split("@")[-1])  # the message names the database (without a password)
    with pytest.raises(StateError, match=rf"at .*{where} is at revision 9999_from_the_future, which this "
                                         rf"install does not know \(it needs {head}\)"):
        StateDB(state_url)  # an older process restarting mid-rollout stops rather than guess

    env = {"COACH_DATABASE_URL": state_url, "COACH_DATA_DIR": str(tmp_path / "data"),
           "COACH_ENV_FILE": str(tmp_path / "no.env")}
    runner = CliRunner()
    asked = runner.invoke(main, ["ask", "hello"], env=env)  # start-up: one clear line, exit 2
    assert asked.exit_code == 2 and "9999_from_the_future" in asked.output and head in asked.output
    assert not (tmp_path / "data" / SOURCE_RECORD).exists()  # stopped before the starter knowledge was imported
    current = runner.invoke(main, ["db", "current"], env=env)
    assert current.exit_code == 1 and "newer than this install" in current.output
    upgrade = runner.invoke(main, ["db", "upgrade"], env=env)
    assert upgrade.exit_code == 2 and "9999_from_the_future" in upgrade.output
    still = StateDB(state_url, upgrade=False)  # and nothing was changed
    assert schema_revision(still.engine)[0] == "9999_from_the_future"
    assert ProcessedEvents(still).claim("slack:Ev1") is False


def test_hn01_adds_the_resolution_note_to_kept_escalations_and_downgrades(state_url: str) -> None:
    """A handoff resolved before hn01 keeps its row with no note; a new resolve stores one; ck01 again drops it."""
    engine = create_engine(state_url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "ck01")
    now = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO escalations (target, reason, category, urgent, status, memory_key, platform, "
                          "user_id, summary, details, created_at, updated_at, resolved_at) VALUES ('integrator', "
                          "'asked for a person', 'complex', false, 'resolved', 'slack:C1:1.1', 'slack', 'U1', "
                          "'plan a podcast unit', '[]', :now, :now, :now)"), {"now": now})
    engine.dispose()

    db = StateDB(state_url)
    escalations = Escalations(db)
    [old] = escalations.list(status=None)
    assert (old.status, old.resolution_note) == ("resolved", None)
    opened = escalations.open_or_add(target="integrator", reason="r", category="complex", urgent=False,
                                     memory_key="slack:C2:2.2", platform="slack", user_id="U2", summary="s",
                                     detail={"text": "help"})
    assert escalations.resolve(opened.id, "slack:U0INT", "Sam", note="Start with a two-minute interview.")
    assert escalations.get(opened.id).resolution_note == "Start with a two-minute interview."
    db.engine.dispose()

    engine = create_engine(state_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "ck01")
    columns = {c["name"] for c in inspect(engine).get_columns("escalations")}
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT count(*) FROM escalations")).scalar()
    engine.dispose()
    assert "resolution_note" not in columns and kept == 2
