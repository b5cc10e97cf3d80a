"""Alembic migrations of the state database, installed as the package `coach_migrations`.

`bot.state.database.StateDB` runs them at start-up (and `coach db upgrade` on demand); they are
the only way a state table is made or changed.
"""
