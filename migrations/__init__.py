"""Alembic migrations of the state database; `bot.state.database.StateDB` runs them at start-up."""
