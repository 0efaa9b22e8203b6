"""`CallCompleted`: emitted by every policy's call paths while (and only while) it is asked for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import resilient
from resilient import instrumentation
from resilient._events import HUB
from resilient.instrumentation import CallCompleted, Event
from resilient.testing import FakeClock

# Every test runs with the C success path of @retry, then without.
pytestmark = pytest.mark.usefixtures("retry_impl")


@pytest.fixture
def completed() -> Iterator[list[CallCompleted]]:
    seen: list[Any] = []
    instrumentation.subscribe(seen.append, events=CallCompleted)
    yield seen
    instrumentation.unsubscribe(seen.append)
    assert HUB.timing is False


def _summary(events: list[CallCompleted]) -> list[tuple[str, str, str, float]]:
    return [(e.policy, e.name, e.outcome, e.duration) for e in events]


def _policies(clock: FakeClock) -> list[resilient.Policy]:
    return [
        resilient.Retry(attempts=3, backoff=resilient.Backoff.constant(0.0), clock=clock, name="r"),
        resilient.CircuitBreaker("cb", clock=clock),
        resilient.Bulkhead(2, name="bh", clock=clock),
        resilient.AdaptiveBulkhead(initial=2, name="ab", clock=clock),
        resilient.Timeout(5.0, name="to", clock=clock),
        resilient.TokenBucket(rate=100, capacity=100, name="tb", clock=clock),
    ]


def test_every_policy_reports_a_sync_call_with_its_duration(
    completed: list[CallCompleted],
) -> None:
    clock = FakeClock()

    def slow() -> str:
        clock.advance(0.25)
        return "ok"

    for policy in _policies(clock):
        assert policy.call(slow) == "ok"
        assert policy(slow)() == "ok"
    kinds = ["retry", "circuit_breaker", "bulkhead", "adaptive_bulkhead", "timeout", "rate_limiter"]
    names = ["r", "cb", "bh", "ab", "to", "tb"]
    expected = []
    for kind, name in zip(kinds, names, strict=True):
        expected += [(kind, name, "success", 0.25)] * 2
    assert [(k, n, o, round(d, 6)) for k, n, o, d in _summary(completed)] == expected


async def test_every_policy_reports_an_async_call(completed: list[CallCompleted]) -> None:
    clock = FakeClock()

    async def slow() -> str:
        clock.advance(0.5)
        await anyio.sleep(0)
        return "ok"

    async def broken() -> str:
        clock.advance(0.5)
        raise KeyError("x")

    for policy in _policies(clock):
        assert await policy.acall(slow) == "ok"
        with pytest.raises(KeyError):
            await policy(broken)()
    outcomes = [(e.policy, e.outcome, round(e.duration, 6)) for e in completed]
    # The retry ran ``broken`` three times: 1.5 s in all.
    assert outcomes[:2] == [("retry", "success", 0.5), ("retry", "failure", 1.5)]
    assert [o for _, o, _ in outcomes[2:]] == ["success", "failure"] * 5


def test_a_retry_that_recovers_is_one_success_over_all_attempts(
    completed: list[CallCompleted],
) -> None:
    clock = FakeClock()
    tries: list[int] = []

    @resilient.retry(
        on=ConnectionError, attempts=3, backoff=resilient.Backoff.constant(1.0), clock=clock
    )
    def flaky() -> str:
        tries.append(1)
        clock.advance(0.1)
        if len(tries) < 3:
            raise ConnectionError
        return "ok"

    assert flaky() == "ok"
    [event] = completed
    assert event.outcome == "success"
    assert event.name.endswith("flaky")
    assert round(event.duration, 6) == 2.3  # three attempts of 0.1 s and two sleeps of 1 s


def test_outcomes_classify_the_exception(completed: list[CallCompleted]) -> None:
    breaker = resilient.CircuitBreaker("cb", failure_rate=None, consecutive_failures=100)

    def raises(error: BaseException) -> None:
        raise error

    for error in (ValueError(), resilient.DeadlineExceeded(), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            breaker.call(raises, error)
    assert [e.outcome for e in completed] == ["failure", "timeout", "cancelled"]


def test_rejected_calls_are_not_completed_calls(completed: list[CallCompleted]) -> None:
    bucket = resilient.TokenBucket(rate=1, capacity=1, name="tb", clock=FakeClock())
    assert bucket.call(lambda: 1) == 1
    with pytest.raises(resilient.RateLimitedError):
        bucket.call(lambda: 1)
    assert [e.outcome for e in completed] == ["success"]


def test_nothing_is_timed_for_a_plain_subscriber() -> None:
    seen: list[Event] = []
    instrumentation.subscribe(seen.append)
    try:
        assert HUB.timing is False
        resilient.CircuitBreaker("cb").call(lambda: 1)
        resilient.retry()(lambda: 1)()
    finally:
        instrumentation.unsubscribe(seen.append)
    assert seen == []


def test_a_name_filter_applies_to_completed_calls() -> None:
    seen: list[Event] = []
    instrumentation.subscribe(seen.append, name="a", events=CallCompleted)
    try:
        resilient.CircuitBreaker("a").call(lambda: 1)
        resilient.CircuitBreaker("b").call(lambda: 1)
    finally:
        instrumentation.unsubscribe(seen.append)
    assert [e.name for e in seen] == ["a"]


def test_a_call_observer_gets_each_policy_once_and_a_broken_sink_never_breaks_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resilient._events import CallObserver, CallSink

    reported: list[object] = []
    monkeypatch.setattr("sys.unraisablehook", reported.append)
    bound: list[tuple[str, str]] = []

    class Broken(CallSink):
        durations = False

        def record(self, outcome: str, duration: float) -> None:
            raise RuntimeError("broken sink")

    class Observer(CallObserver):
        def bind(self, policy: str, name: str) -> CallSink:
            bound.append((policy, name))
            return Broken()

    observer = Observer()
    instrumentation.subscribe(observer, events=CallCompleted)
    try:
        breaker = resilient.CircuitBreaker("observed")
        through = breaker(lambda: "ok")
        retried = resilient.Retry(on=ConnectionError, attempts=2, name="observed")(lambda: "ok")
        for _ in range(3):
            assert through() == "ok"
            assert retried() == "ok"
        with pytest.raises(ZeroDivisionError):
            breaker(lambda: 1 / 0)()
    finally:
        instrumentation.unsubscribe(observer)
    assert bound == [("circuit_breaker", "observed"), ("retry", "observed")]
    assert len(reported) == 1  # once, not once per call
    assert isinstance(reported[0].exc_value, RuntimeError)  # type: ignore[attr-defined]
    assert HUB.timing is False
