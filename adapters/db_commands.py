"""`coach db upgrade` and `coach db current`: the state database's schema, by Alembic revision.

Every bot process upgrades the schema when it starts (under a lock, so N processes starting
together upgrade it once), and refuses to start on a database it cannot upgrade or that a newer
version upgraded. Operators still run `coach db upgrade` once before starting the new
version's processes after an update, so a failed upgrade stops the rollout there and not in
every replica; `coach db current` shows where a database stands without changing it.
"""

from __future__ import annotations

import sys

import click

from bot.state.database import StateDB, StateError, _safe_url, revision_known, schema_revision, upgrade_schema


def _open(upgrade: bool) -> StateDB:
    from adapters.cli_context import Context

    settings = click.get_current_context().ensure_object(Context).settings
    return StateDB(settings.state_url, upgrade=upgrade)


@click.group("db")
def db() -> None:
    """The state database (memory, dedupe, feedback, escalations, outbox): schema migrations."""


@db.command("current")
def current_cmd() -> None:
    """Print the database's schema revision and the newest one; exit 1 when an upgrade is due."""
    state = _open(upgrade=False)
    try:
        current, head = schema_revision(state.engine)
    except StateError:
        raise
    except Exception as exc:  # noqa: BLE001  (a database that is down: one clear line, exit 2)
        raise StateError(f"cannot read the schema revision of {_safe_url(state.url)}: {exc}") from exc
    finally:
        state.engine.dispose()
    if current == head:
        status = "up to date"
    elif current is not None and not revision_known(current):
        status = "newer than this install: update the coach on this host"
    else:
        status = "upgrade due: run `coach db upgrade`"
    click.echo(f"{_safe_url(state.url)}: revision {current or '(none: empty or made before migrations)'}, "
               f"newest {head} ({status})")
    if current != head:
        sys.exit(1)


@db.command("upgrade")
def upgrade_cmd() -> None:
    """Upgrade the schema to the newest revision; rows are kept. Safe to run while bots are running.

    Exits 2, changing nothing, when the upgrade fails or a newer version already upgraded the database.
    """
    state = _open(upgrade=False)
    try:
        before, head = schema_revision(state.engine)
        after = upgrade_schema(state.engine)
    except StateError:
        raise
    except Exception as exc:  # noqa: BLE001  (SQLAlchemy's errors for a database that is down)
        raise StateError(f"cannot upgrade the state database at {_safe_url(state.url)}: {exc}") from exc
    finally:
        state.engine.dispose()
    if before == after:
        click.echo(f"{_safe_url(state.url)}: already at revision {after}; nothing to do")
    else:
        click.echo(f"{_safe_url(state.url)}: upgraded from {before or '(none)'} to {after}")
