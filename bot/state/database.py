"""The state database: engine, sessions, locks and schema migrations for every state table.

Tables live with their concern (`bot.state.memory`, `bot.state.inbound`, `bot.handoff`, ...), all on
this module's `Base`. SQLAlchemy 2 so the same code runs on SQLite (one school) and PostgreSQL (a district).
The schema is made and changed by Alembic alone (the package `coach_migrations`): opening a StateDB
upgrades it to the newest revision, under a lock, so several bot processes starting at once
upgrade it exactly once; a database that cannot be upgraded, or that a newer version upgraded,
refuses to open with a StateError that says where it is and which revision it is at and needs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, cast, overload

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import CursorResult, Table, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


log = logging.getLogger(__name__)

# The migrations ship as a package of their own (the source tree's migrations/), found by import
# so a wheel installed anywhere finds them.
MIGRATIONS_PACKAGE = "coach_migrations"
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

def migrations_dir() -> Path:
    """The installed migrations (package `coach_migrations`, the source tree's `migrations/`), found by import."""
    try:
        root = resources.files(MIGRATIONS_PACKAGE)
    except ModuleNotFoundError:
        # An editable install made before the package was renamed maps no `coach_migrations`.
        raise StateError(f"the state database's migrations ({MIGRATIONS_PACKAGE}) are not installed; "
                         "reinstall the coach (scripts/install)") from None
    if not isinstance(root, Path) or not (root / "alembic.ini").is_file():
        raise StateError(f"the state database's migrations ({MIGRATIONS_PACKAGE}) are not installed "
                         f"as plain files with their alembic.ini: {root}; reinstall the coach")
    return root


def alembic_config() -> Config:
    """Alembic's configuration for the installed migrations."""
    root = migrations_dir()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root))
    return config


def schema_revision(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision or None for an empty or pre-migration one, the newest installed revision)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StateError(f"the state database's migrations ({migrations_dir()}) have no revisions; reinstall the coach")
    with engine.connect() as conn:
        try:
            current = MigrationContext.configure(conn).get_current_revision()
        except CommandError as exc:  # more than one row in alembic_version: not a schema this coach made
            raise StateError(f"the state database at {_safe_url(str(engine.url))} has no single revision "
                             f"(it needs {head}): {exc}") from exc
    return current, head


def revision_known(revision: str) -> bool:
    """Whether the installed migrations have this revision (False for one a newer version wrote)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:  # alembic's answer for an id it has no file for
        return False


def upgrade_schema(engine: Engine) -> str:
    """Upgrade to the newest revision (`alembic upgrade head`), the only way a schema is made or changed; returns it.

    Raises StateError, saying where the database is and which revision it is at and which is
    needed, when it is at a revision this install does not know (a newer version upgraded it) or
    when the upgrade fails (the failed upgrade changes nothing). Safe when several processes start
    at once: on PostgreSQL the upgrade runs in one transaction holding an advisory lock, so the
    second process waits, then finds the schema current; on SQLite a lock file beside the database
    does the same.
    """
    where = _safe_url(str(engine.url))
    current, head = schema_revision(engine)
    if current == head:  # the usual start-up: nothing to do, and no lock taken
        return head
    if current is not None and not revision_known(current):
        # Running anyway could write rows the newer schema does not expect (or miss columns it needs).
        raise StateError(f"the state database at {where} is at revision {current}, which this install does not "
                         f"know (it needs {head}): a newer version of the coach upgraded it. Install that version "
                         "here, or restore the backup taken before that upgrade")
    config = alembic_config()
    try:
        with _migration_lock(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except Exception as exc:  # alembic's own errors, a refused step, a database that refuses DDL
        raise StateError(f"cannot upgrade the state database at {where} from revision "
                         f"{current or '(none: empty or made before migrations)'} to {head}: {exc}") from exc
    after, _ = schema_revision(engine)
    if after != head:  # another process moved it meanwhile, or a revision did not stamp
        raise StateError(f"the state database at {where} is at revision {after} after upgrading; it needs {head}")
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
