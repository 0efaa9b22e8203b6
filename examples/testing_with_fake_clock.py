"""Testing your code with ``FakeClock``: retries, breakers and limiters without real sleeping.

Code under test takes its policies from outside (here as arguments), so a test can build them
with ``clock=FakeClock()``. Time then moves only when the test says so, or when a policy sleeps
on the fake clock, which returns at once. These tests would take minutes on the real clock;
they take milliseconds.

Run it: ``pytest examples/testing_with_fake_clock.py``, or
``python examples/testing_with_fake_clock.py``, which calls each test in turn.
"""

from __future__ import annotations

import contextlib

import anyio
import pytest

from resilient import (
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Pipeline,
    RateLimitedError,
    Retry,
    Timeout,
    TokenBucket,
)
from resilient.testing import FakeClock, no_waiting


# --- the code under test -------------------------------------------------------------------
class PriceClient:
    """Calls a flaky pricing service through a pipeline it is given."""

    def __init__(self, fetch, policies: Pipeline) -> None:
        self._fetch = policies(fetch)

    def price(self, sku: str) -> int:
        return self._fetch(sku)


def flaky(failures: int):
    """A fake service that fails ``failures`` times, then answers 100."""
    calls = []

    def fetch(sku: str) -> int:
        calls.append(sku)
        if len(calls) <= failures:
            raise ConnectionError("pricing is down")
        return 100

    return fetch, calls


# --- the tests -------------------------------------------------------------------------------
def test_retries_back_off_exponentially() -> None:
    clock = FakeClock()
    retry = Retry(
        on=ConnectionError,
        attempts=4,
        backoff=Backoff.exponential(1.0, 60.0, jitter="none"),
        clock=clock,
    )
    fetch, calls = flaky(failures=3)
    assert PriceClient(fetch, Pipeline(retry)).price("sku-1") == 100
    assert len(calls) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]  # no real second went by
    assert clock.monotonic() == 7.0


def test_breaker_opens_then_lets_a_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("pricing", consecutive_failures=2, open_for=30.0, clock=clock)
    fetch, calls = flaky(failures=2)
    client = PriceClient(fetch, Pipeline(breaker))
    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            client.price("sku-1")
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        client.price("sku-1")
    assert refused.value.retry_after == 30.0
    assert len(calls) == 2  # refused without calling the service

    clock.advance(30.0)  # the open period is over: the next call is a trial
    assert client.price("sku-1") == 100
    assert breaker.state is CircuitState.CLOSED


def test_rate_limit_refills_with_time() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=2, clock=clock)
    assert limiter.try_acquire("user:1").allowed
    assert limiter.try_acquire("user:1").allowed
    refused = limiter.try_acquire("user:1")
    assert not refused.allowed
    assert refused.retry_after == 1.0
    clock.advance(1.0)
    assert limiter.try_acquire("user:1").allowed


def test_async_timeout_on_the_fake_clock() -> None:
    clock = FakeClock()

    async def slow() -> str:
        await clock.asleep(5.0)  # "takes" five seconds
        return "done"

    async def main() -> str:
        return await Timeout(10.0, clock=clock).acall(slow)

    assert anyio.run(main) == "done"
    assert clock.monotonic() == 5.0


def test_code_with_real_policies_under_no_waiting() -> None:
    # Code that builds its own policies (no clock= to pass): no_waiting() skips the sleeps.
    fetch, calls = flaky(failures=2)
    client = PriceClient(fetch, Pipeline(Retry(on=ConnectionError, attempts=3)))
    with no_waiting():
        assert client.price("sku-1") == 100
    assert len(calls) == 3


def test_exhausted_limiter_raises_with_retry_after() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=0.5, capacity=1, clock=clock)
    guarded = Pipeline(limiter)
    assert guarded.call(lambda: "ok") == "ok"
    with pytest.raises(RateLimitedError) as refused:
        guarded.call(lambda: "ok")
    assert refused.value.retry_after == 2.0


if __name__ == "__main__":
    # Without pytest's runner: the tests are plain functions (pytest.raises works on its own).
    tests = [value for name, value in sorted(globals().items()) if name.startswith("test_")]
    for test in tests:
        test()
        print("passed:", test.__name__)
    print(f"{len(tests)} passed")
