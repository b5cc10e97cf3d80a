"""Alembic environment for the state database.

Called two ways: by `bot.state.database.upgrade_schema` (StateDB start-up, `coach db upgrade`) with an
open connection in `config.attributes["connection"]`, already holding the migration lock and
inside the transaction the caller commits; or by the `alembic` command line, which connects
to `-x url=...`, the `sqlalchemy.url` option, or the coach's own setting (COACH_DATABASE_URL,
else the SQLite file in the data directory).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from bot.settings import load_settings
# The installed package (the source tree's migrations/, mapped by the editable install), so this
# file means the same run from a wheel, from the repository, or by the alembic command line.
from coach_migrations.metadata import full_metadata

config = context.config
# The models are only needed to compare against (autogenerate, `alembic check`); an upgrade runs
# the frozen revisions alone, so StateDB start-up does not import every table module.
target_metadata = None if config.attributes.get("connection") is not None else full_metadata()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    return load_settings().state_url


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode copies the table instead, rows included.
        render_as_batch=True,
        **kwargs,
    )


def run_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # The caller owns the transaction (and the lock): begin_transaction() joins it.
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
