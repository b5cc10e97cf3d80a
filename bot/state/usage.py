"""Token usage and an estimated cost for every model call, per conversation.

One row per call (a reply, its repair, a triage question) in the state database beside the
conversation memory, so an integrator can see what LLM mode costs and which conversations
cost the most. Prices are an estimate from a small table the school can override
(`openai.prices` in config/coach.yaml); a model missing from it is recorded with no cost
rather than a wrong one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from bot.state.database import Base, StateDB, StateError, utcnow

log = logging.getLogger(__name__)

# USD per million tokens (input, output), from the providers' public price lists; an estimate.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
}


class UsageRow(Base):
    """One model call: which conversation, which model, how many tokens, roughly what it cost."""

    __tablename__ = "llm_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    memory_key: Mapped[str | None] = mapped_column(String(400), index=True, nullable=True)
    purpose: Mapped[str] = mapped_column(String(20), default="reply")  # reply, repair, triage
    model: Mapped[str] = mapped_column(String(120))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


@dataclass(frozen=True)
class UsageTotals:
    """Sums over a conversation (or everything)."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def price_for(model: str, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The price of `model`; a dated name ("gpt-4o-mini-2024-07-18") takes its family's price."""
    if model in prices:
        return prices[model]
    # Longest prefix wins, so "gpt-4o-mini-..." is not priced as "gpt-4o".
    for name in sorted(prices, key=len, reverse=True):
        if model.startswith(name + "-"):
            return prices[name]
    return None


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int,
                  prices: Mapping[str, tuple[float, float]]) -> float | None:
    """Estimated USD for one call, or None when the model has no price."""
    price = price_for(model, prices)
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)


class UsageLog:
    """Writes and sums `llm_usage` rows; a failure to record never stops a reply."""

    def __init__(self, db: StateDB, prices: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.db = db
        self.prices = {**DEFAULT_PRICES, **(prices or {})}

    def record(self, *, memory_key: str | None, model: str, prompt_tokens: int, completion_tokens: int,
               purpose: str = "reply") -> float | None:
        """Store one call; returns its estimated cost."""
        cost = estimate_cost(model, prompt_tokens, completion_tokens, self.prices)
        try:
            with self.db.session() as s:
                s.add(UsageRow(memory_key=memory_key, purpose=purpose[:20], model=model[:120],
                               prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost))
        except (StateError, SQLAlchemyError):
            log.exception("could not record token usage for %s", memory_key)
        return cost

    def totals(self, memory_key: str | None = None) -> UsageTotals:
        """Calls, tokens and estimated cost for one conversation, or for all when no key is given."""
        query = select(func.count(UsageRow.id), func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
                       func.coalesce(func.sum(UsageRow.completion_tokens), 0),
                       func.coalesce(func.sum(UsageRow.cost_usd), 0.0))
        if memory_key is not None:
            query = query.where(UsageRow.memory_key == memory_key)
        with self.db.session() as s:
            calls, prompt, completion, cost = s.execute(query).one()
        return UsageTotals(int(calls), int(prompt), int(completion), float(cost or 0.0))

    def rows(self, memory_key: str) -> list[UsageRow]:
        """Every call of one conversation, oldest first."""
        with self.db.session() as s:
            return list(s.scalars(select(UsageRow).where(UsageRow.memory_key == memory_key)
                                  .order_by(UsageRow.created_at, UsageRow.id)))
