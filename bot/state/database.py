"""The state database: engine, sessions, locks and schema migrations for every state table.

Tables live with their concern (`bot.state.memory`, `bot.state.inbound`, `bot.handoff`, ...), all on
this module's `Base`. SQLAlchemy 2 so the same code runs on SQLite (one school) and PostgreSQL (a district).
The schema is managed by Alembic (migrations/): opening a StateDB upgrades it to the newest
revision, under a lock, so several bot processes starting at once upgrade it exactly once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast, overload

from sqlalchemy import CursorResult, Table, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Every process takes this PostgreSQL advisory lock around an upgrade ("coach" in ASCII).
MIGRATION_LOCK_KEY = 0x636F616368


def utcnow() -> datetime:
    """Now, in UTC, as every state table stores it."""
    return datetime.now(timezone.utc)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create `path` (and parents) readable by the coach's user only; with `tighten`, also an existing one.

    The data directory holds conversations and safeguarding accounts: nobody else on the server
    needs to read it. A directory the coach does not own outright (the folder a database URL
    points into) is only created private, never changed.
    """
    existed = path.exists()
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if (tighten or not existed) and path.stat().st_mode & 0o777 != PRIVATE_DIR:
        try:
            path.chmod(PRIVATE_DIR)
        except PermissionError:  # not ours (a mounted volume): say so rather than fail
            log.warning("cannot make %s private (mode 0700); check who owns it", path)
    return path


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing, or tighten it; SQLite's -wal and -shm follow the database's mode."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.exists() and p.stat().st_mode & 0o777 != PRIVATE_FILE:
                p.chmod(PRIVATE_FILE)
        except PermissionError:
            log.warning("cannot make %s private (mode 0600); check who owns it", p)


class StateError(RuntimeError):
    """The state database cannot be opened or written; the message says where."""


class Base(DeclarativeBase):
    pass


class StateDB:
    """An engine and a session factory for the state database."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        """Open the database; with `upgrade` (the default) bring its schema to the newest revision first."""
        self.url = url
        try:
            if url.startswith("sqlite:///"):
                path = Path(url.removeprefix("sqlite:///"))
                if str(path) != ":memory:":
                    private_dir(path.parent, tighten=False)
                    private_file(path)
            self.engine: Engine = create_engine(url, pool_pre_ping=True, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            if upgrade:
                upgrade_schema(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(f"cannot open the state database at {_safe_url(url)}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StateError(f"state database {_safe_url(self.url)} failed: {exc.orig}") from exc
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def lock(self, session: Session, name: str) -> None:
        """Serialise the session's transaction with every other one that locks `name`, in any process.

        Call it first in a transaction that reads and then writes by what it read ("open an
        escalation unless one is open"); the lock lasts until commit or rollback. PostgreSQL: an
        advisory lock on the name; SQLite: BEGIN IMMEDIATE, the database's one write lock, taken
        before the read (SQLite would otherwise read outside any transaction).
        """
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})
        elif dialect == "sqlite":
            raw = session.connection().connection.driver_connection
            assert raw is not None  # an open SQLite connection
            if not raw.in_transaction:
                raw.execute("BEGIN IMMEDIATE")



# -- schema migrations (Alembic) ---------------------------------------------------------------

def alembic_config() -> Any | None:
    """Alembic's configuration for migrations/, or None when they (or alembic) are not installed."""
    ini = MIGRATIONS_DIR / "alembic.ini"
    if not ini.is_file():
        return None
    try:
        from alembic.config import Config
    except ImportError:
        return None
    config = Config(str(ini))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def schema_revision(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's revision, the newest revision in migrations/); None where there is none."""
    config = alembic_config()
    if config is None:
        return None, None
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def revision_known(revision: str) -> bool:
    """Whether migrations/ has this revision (False for one a newer version wrote)."""
    config = alembic_config()
    if config is None:
        return False
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(config).get_revision(revision) is not None
    except Exception:  # alembic raises its CommandError/ResolutionError for an unknown id
        return False


def upgrade_schema(engine: Engine) -> str | None:
    """Upgrade to the newest revision (`alembic upgrade head`); returns it, or None without migrations.

    Safe when several processes start at once: on PostgreSQL the upgrade runs in one
    transaction holding an advisory lock, so the second process waits, then finds the schema
    current; on SQLite a lock file beside the database does the same. Without migrations/
    (an install that left them out) tables are created directly, as before migrations existed.
    """
    config = alembic_config()
    if config is None:
        Base.metadata.create_all(engine)
        return None
    current, head = schema_revision(engine)
    if current == head:  # the usual start-up: nothing to do, and no lock taken
        return head
    if current is not None and not revision_known(current):
        # A newer version upgraded the database (a rolling upgrade, or this install rolled back).
        # Migrations only add in one release, so this version still works against it: start.
        log.warning("state database is at revision %s, newer than this install's migrations (%s); "
                    "running against it: update this install", current, head)
        return current
    from alembic import command

    try:
        with _migration_lock(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError:
        raise
    except Exception as exc:  # alembic's own errors (a missing revision file, a refused step)
        raise StateError(f"cannot upgrade the state database at {_safe_url(str(engine.url))}: {exc}") from exc
    log.info("state database upgraded from %s to %s", current or "an empty schema", head)
    return head


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time holds, committed on success."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Released at commit or rollback; PostgreSQL's DDL is transactional, so the schema
            # and alembic_version change together or not at all.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            yield conn
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    try:
        import fcntl
    except ImportError:  # not on a POSIX system: one process at a time is the operator's job there
        with engine.begin() as conn:
            yield conn
        return
    with open(f"{database}.migrate-lock", "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                # pysqlite runs DDL outside any transaction unless told; one explicit transaction
                # makes the upgrade all-or-nothing (and one disk sync instead of one per statement).
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
    cur.execute("PRAGMA busy_timeout=5000")
    # With WAL, NORMAL survives any process crash; only an OS crash or power cut could lose
    # the last commits, and it saves an fsync on every message.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _safe_url(url: str) -> str:
    # Never print a password that a database URL carries.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def rows_changed(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (`Session.execute` types every result as a plain `Result`)."""
    return cast(CursorResult[Any], result).rowcount or 0


def table_of(model: type[Base]) -> Table:
    """A mapped class's table (the ORM types `__table__` as any FROM clause)."""
    return cast(Table, model.__table__)
