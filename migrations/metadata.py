"""Every table the coach keeps in the state database, gathered onto one MetaData.

Each module that defines tables on `bot.state.database.Base` registers them when imported, so this
list is what autogenerate and the schema test compare against. A module that is missing in
this checkout is skipped (logged), so the migrations still run in a partial tree.
"""

from __future__ import annotations

import importlib
import logging

from sqlalchemy import MetaData

from bot.state.database import Base

log = logging.getLogger(__name__)

# Add a module here when it starts defining tables on bot.state.database.Base.
TABLE_MODULES = (
    "bot.state.memory",            # turns, feedback
    "bot.state.inbound",           # processed_events, inbound_events
    "bot.handoff.escalations",     # escalations
    "bot.handoff.outbox",          # outbox
    "bot.state.usage",             # llm_usage
    "bot.state.privacy",           # privacy_audit
    "adapters.teams.references",   # teams_conversation_refs, teams_reply_cards
    "bot.checkins.store",          # checkins, checkin_optouts
)


def full_metadata() -> MetaData:
    """bot.state.database.Base.metadata with every table module imported."""
    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a module not installed here (an optional extra)
            log.warning("state tables in %s not loaded: %s", name, exc)
    return Base.metadata
