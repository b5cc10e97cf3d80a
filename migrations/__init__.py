"""Alembic migrations of the state database; `bot.state.StateDB` runs them at start-up."""
