"""Retries: the one backoff rule, and calls retried within a time budget or a number of attempts.

Every retry in the coach waits the same way: `base * 2**n` before retry n (n from 0), at most
`cap`, less a random part of up to `jitter` of it so that many replicas or rows failing together
do not come back together. Where the waiting is a stored time (the handoff outbox, check-ins)
only `backoff` is used; where a call is simply tried again in the same thread or task, `retry`
(or `retry_async`) runs the loop. Calls with more to decide between attempts (the chat model's
deadline and Retry-After, bot/compose/llm.py) keep their loop and take their waits from `backoff`.

No library is used: the retries here are three small loops, and tenacity (present only as
chromadb's dependency) is not one of the coach's own dependencies.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["backoff", "retry", "retry_async"]

T = TypeVar("T")
Errors = type[BaseException] | tuple[type[BaseException], ...]


def backoff(n: int, *, base: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait before retry `n` (0 for the first): `base * 2**n`, at most `cap`, less up to `jitter` of it."""
    delay = min(base * 2 ** max(n, 0), cap)
    return delay * random.uniform(1.0 - jitter, 1.0) if jitter else delay


def _give_up(n: int, wait: float, now: float, deadline: float | None, attempts: int | None) -> bool:
    """After failure `n` (from 0): no attempts left, or the wait would end past the deadline."""
    return (attempts is not None and n + 1 >= attempts) or (deadline is not None and now + wait > deadline)


def retry(fn: Callable[[], T], *, on: Errors, budget: float | None = None, attempts: int | None = None,
          delay: float = 0.0, max_delay: float | None = None, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> T:
    """`fn()`, called again after an `on` error, waiting `backoff(n, base=delay, cap=max_delay)` in between.

    Stops (raising the last error) after `attempts` calls, or when the next wait would end more
    than `budget` seconds after the first call began; with neither it retries for ever.
    """
    deadline = clock() + budget if budget is not None else None
    for n in itertools.count():
        try:
            return fn()
        except on:
            wait = backoff(n, base=delay, cap=delay if max_delay is None else max_delay)
            if _give_up(n, wait, clock(), deadline, attempts):
                raise
            if wait > 0:
                sleep(wait)
    raise AssertionError("unreachable")  # itertools.count() never ends


async def retry_async(fn: Callable[[], Awaitable[T]], *, on: Errors, budget: float | None = None,
                      attempts: int | None = None, delay: float = 0.0, max_delay: float | None = None) -> T:
    """`retry` for a coroutine function, waiting with `asyncio.sleep` on the running loop's clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget if budget is not None else None
    for n in itertools.count():
        try:
            return await fn()
        except on:
            wait = backoff(n, base=delay, cap=delay if max_delay is None else max_delay)
            if _give_up(n, wait, loop.time(), deadline, attempts):
                raise
            if wait > 0:
                await asyncio.sleep(wait)
    raise AssertionError("unreachable")
