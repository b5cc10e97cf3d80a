"""Alembic migrations of the state database, on SQLite and a real PostgreSQL server.

The contract: upgrading an empty database yields exactly the schema the models describe (so a
model change without a migration fails here), a database made before migrations is adopted with
every row kept, an upgrade that fails changes nothing, and `coach db` reports and upgrades.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Column, MetaData, Table, create_engine, inspect, text

import bot.state.database
from bot.handoff.escalations import Escalations
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB, StateError, schema_revision, upgrade_schema
from bot.state.inbound import ProcessedEvents
from migrations.metadata import full_metadata

# Columns added to escalations after the first schema, in place: a school's older state.db lacks them.
LATER_ESCALATION_COLUMNS = {"claimed_by_name", "resolved_by", "resolved_by_name", "reply_to"}
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
    with pytest.raises(StateError, match="lacks the required column"):
        StateDB(state_url)
    tables = set(inspect(engine).get_table_names())
    assert tables == {"turns"}  # no table half-created, no alembic_version claiming success
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM turns")).scalar() == "school data"
    engine.dispose()


def test_without_migrations_installed_tables_are_created_directly(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.state.database, "MIGRATIONS_DIR", tmp_path / "not-installed")
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    assert ProcessedEvents(db).claim("slack:Ev1") is True
    assert "alembic_version" not in inspect(db.engine).get_table_names()
    assert schema_revision(db.engine) == (None, None)


def test_coach_db_current_and_upgrade(state_url: str, tmp_path: Path) -> None:
    from adapters.cli import main

    runner = CliRunner()
    env = {"COACH_DATABASE_URL": state_url, "COACH_DATA_DIR": str(tmp_path / "data"),
           "COACH_ENV_FILE": str(tmp_path / "no.env")}
    from alembic.script import ScriptDirectory

    newest = ScriptDirectory.from_config(bot.state.database.alembic_config()).get_current_head()
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


def test_a_database_a_newer_version_upgraded_still_opens(state_url: str, tmp_path: Path) -> None:
    from adapters.cli import main

    db = StateDB(state_url)
    with db.engine.begin() as conn:  # as if a newer release had added revision 9999 on top
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    again = StateDB(state_url)  # an older process restarting mid-rollout must still start
    assert ProcessedEvents(again).claim("slack:Ev1") is True
    env = {"COACH_DATABASE_URL": state_url, "COACH_ENV_FILE": str(tmp_path / "no.env")}
    result = CliRunner().invoke(main, ["db", "current"], env=env)
    assert result.exit_code == 1 and "newer than this install" in result.output
