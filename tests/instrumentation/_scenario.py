"""One scripted scenario for the exporters' tests: retries, a breaker trip and recovery,
bulkhead and rate limiter rejections, all on a FakeClock.

Expected, when it has run:

- retry ``fetch``: 2 retries (delays 0.5 s), then 1 successful call lasting 1.3 s
  (three attempts of 0.1 s and two sleeps of 0.5 s);
- breaker ``payments``: 2 failed calls (0.2 s each) open it, 1 call is rejected (``open``),
  after 10 s a trial call (0.2 s) succeeds and closes it: transitions closed→open,
  open→half_open, half_open→closed;
- bulkhead ``db`` (1 slot): held by a block, 1 call rejected (``full``) meanwhile;
- token bucket ``api`` (1 token): 1 successful call, 1 call rate limited.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

import resilient
from resilient.testing import FakeClock


def run_scenario(
    while_open: Callable[[], None] = lambda: None,
    while_full: Callable[[], None] = lambda: None,
) -> dict[str, object]:
    """Run the scenario; the callbacks run while the breaker is open / the bulkhead is full."""
    # The gauges report every live breaker and bulkhead: let those of earlier tests go first
    # (breakers sit in reference cycles, so only the collector frees them).
    gc.collect()
    clock = FakeClock()
    retry = resilient.Retry(
        on=ConnectionError,
        attempts=3,
        backoff=resilient.Backoff.constant(0.5),
        clock=clock,
        name="fetch",
    )
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        clock.advance(0.1)
        if len(tries) < 3:
            raise ConnectionError("try again")
        return "ok"

    assert retry.call(flaky) == "ok"

    breaker = resilient.CircuitBreaker(
        "payments", failure_rate=None, consecutive_failures=2, open_for=10.0, clock=clock
    )

    def failing() -> None:
        clock.advance(0.2)
        raise ConnectionError("down")

    def working() -> str:
        clock.advance(0.2)
        return "paid"

    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(failing)
    with pytest.raises(resilient.CircuitOpenError):
        breaker.call(working)
    while_open()
    clock.advance(10.0)
    assert breaker.call(working) == "paid"

    bulkhead = resilient.Bulkhead(1, name="db", clock=clock)
    with bulkhead:
        with pytest.raises(resilient.BulkheadFullError):
            bulkhead.call(working)
        while_full()

    limiter = resilient.TokenBucket(rate=1, capacity=1, name="api", clock=clock)
    assert limiter.call(lambda: 1) == 1
    with pytest.raises(resilient.RateLimitedError):
        limiter.call(lambda: 1)
    # Kept alive so that the gauges can be read after the run.
    return {"breaker": breaker, "bulkhead": bulkhead, "limiter": limiter, "retry": retry}
