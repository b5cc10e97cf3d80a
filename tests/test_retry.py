"""bot/retry.py: the one backoff rule and the retried call, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from bot.retry import backoff, retry, retry_async


class Clock:
    """time.monotonic and time.sleep for `retry`: sleeping moves the clock on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Flaky:
    """Fails with `error` the first `failures` calls, then returns how many calls it took."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls


def test_backoff_doubles_to_its_cap_and_jitter_only_shortens():
    assert [backoff(n, base=0.2, cap=2.0) for n in range(6)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert backoff(-1, base=5.0, cap=900.0) == 5.0  # "attempt - 1" of a first attempt is the first wait
    for n in range(8):
        waited = backoff(n, base=0.5, cap=8.0, jitter=0.25)
        full = min(0.5 * 2 ** n, 8.0)
        assert 0.75 * full <= waited <= full


def test_retry_within_a_budget_waits_longer_each_time_then_gives_up_with_the_last_error():
    clock = Clock()
    assert retry(Flaky(3), on=ConnectionError, budget=10.0, delay=0.2, max_delay=2.0, sleep=clock.sleep,
                 clock=clock) == 4
    assert clock.slept == pytest.approx([0.2, 0.4, 0.8])
    clock = Clock()
    never = Flaky(1000)
    with pytest.raises(ConnectionError, match="failure 8"):
        retry(never, on=ConnectionError, budget=10.0, delay=0.2, max_delay=2.0, sleep=clock.sleep, clock=clock)
    # 0.2 + 0.4 + 0.8 + 1.6 + 2.0 + 2.0 + 2.0 = 9.0 s; one more 2 s wait would end past the budget.
    assert sum(clock.slept) == pytest.approx(9.0) and never.calls == 8


def test_retry_by_attempts_and_other_errors_pass_straight_through():
    with pytest.raises(KeyError):
        retry(Flaky(1, KeyError), on=ConnectionError, attempts=5)
    assert retry(Flaky(1), on=ConnectionError, attempts=2) == 2
    with pytest.raises(ConnectionError, match="failure 2"):
        retry(Flaky(2), on=(ConnectionError, TimeoutError), attempts=2)


async def test_retry_async_gives_up_when_the_budget_is_spent():
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError):
        await retry_async(failing, on=ConnectionError, budget=0.1, delay=0.02, max_delay=0.04)
    assert calls >= 2  # it did try again (0.02 s, then 0.04 s waits) ...
    assert loop.time() - started <= 0.1 + 0.2  # ... and never waited past the budget

    async def flaky() -> int:
        return Flaky(0)()

    assert await retry_async(flaky, on=ConnectionError, attempts=1) == 1
