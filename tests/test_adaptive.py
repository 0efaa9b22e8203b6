from __future__ import annotations

from contextlib import ExitStack

import anyio
import pytest

from resilient import AdaptiveBulkhead, BulkheadFullError, DeadlineExceeded, timeout
from resilient._events import Event, LimitChanged, subscribe, unsubscribe
from resilient.testing import FakeClock


def round_of_calls(bulkhead: AdaptiveBulkhead, clock: FakeClock, latency: float) -> None:
    """Fill the current limit with concurrent calls that all take ``latency`` seconds."""
    with ExitStack() as stack:
        for _ in range(bulkhead.limit):
            stack.enter_context(bulkhead)
        clock.advance(latency)


@pytest.mark.parametrize("algorithm", ["aimd", "gradient"])
def test_limit_shrinks_under_a_latency_spike_and_grows_back(algorithm: str) -> None:
    clock = FakeClock()
    bulkhead = AdaptiveBulkhead(
        initial=10, minimum=2, maximum=50, algorithm=algorithm, latency_threshold=0.05, clock=clock
    )
    for _ in range(10):
        round_of_calls(bulkhead, clock, 0.01)
    healthy = bulkhead.limit
    assert healthy > 10
    for _ in range(5):
        round_of_calls(bulkhead, clock, 0.2)
    spiked = bulkhead.limit
    assert spiked < healthy
    for _ in range(30):
        round_of_calls(bulkhead, clock, 0.01)
    assert bulkhead.limit > spiked
    assert bulkhead.in_use == 0


def test_failures_shrink_the_limit() -> None:
    clock = FakeClock()
    bulkhead = AdaptiveBulkhead(initial=20, clock=clock)

    def fail() -> None:
        raise RuntimeError

    for _ in range(5):
        with pytest.raises(RuntimeError):
            bulkhead.call(fail)
    assert bulkhead.limit == int(20 * 0.9**5)


def test_limit_stays_within_minimum_and_maximum() -> None:
    clock = FakeClock()
    bulkhead = AdaptiveBulkhead(initial=3, minimum=2, maximum=4, clock=clock)
    for _ in range(10):
        round_of_calls(bulkhead, clock, 0.01)
    assert bulkhead.limit == 4
    for _ in range(20):
        round_of_calls(bulkhead, clock, 10.0)
    assert bulkhead.limit == 2


def test_limit_changes_emit_events_and_admission_follows_the_limit() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        clock = FakeClock()
        bulkhead = AdaptiveBulkhead(initial=2, minimum=1, maximum=2, name="ad", clock=clock)
        with pytest.raises(RuntimeError):
            bulkhead.call(lambda: (_ for _ in ()).throw(RuntimeError()))
        assert bulkhead.limit == 1
        with bulkhead, pytest.raises(BulkheadFullError):
            bulkhead.call(int)
    finally:
        unsubscribe(events.append)
    changes = [(e.name, e.old, e.new) for e in events if isinstance(e, LimitChanged)]
    assert changes == [("ad", 2, 1), ("ad", 1, 2)]  # the healthy block grew it back


async def test_async_calls_adapt_and_cancellation_is_not_a_sample() -> None:
    clock = FakeClock()
    bulkhead = AdaptiveBulkhead(initial=4, minimum=1, maximum=8, latency_threshold=1.0, clock=clock)

    async def slow() -> None:
        await clock.asleep(2.0)

    await bulkhead.acall(slow)
    assert bulkhead.limit == 3
    with anyio.move_on_after(0.01):
        await bulkhead.acall(anyio.sleep, 10)
    assert bulkhead.limit == 3
    async with bulkhead:
        pass
    assert bulkhead.in_use == 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"minimum": 0}, "minimum"),
        ({"minimum": 5, "maximum": 4}, "maximum"),
        ({"initial": 500}, "initial"),
        ({"algorithm": "vegas"}, "algorithm"),
        ({"backoff_ratio": 1.5}, "backoff_ratio"),
        ({"algorithm": "gradient", "tolerance": 0.5}, "tolerance"),
        ({"max_waiting": -1}, "max_waiting"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        AdaptiveBulkhead(**kwargs)


async def test_a_call_cancelled_by_its_deadline_is_a_drop_for_the_limit() -> None:
    clock = FakeClock()
    bulkhead = AdaptiveBulkhead(initial=10, minimum=1, maximum=20, clock=clock)

    async def hang() -> None:
        while True:
            await clock.asleep(0.01)

    with pytest.raises(DeadlineExceeded):
        async with timeout(0.05, clock=clock):
            await bulkhead.acall(hang)
    assert bulkhead.limit == 9  # 10 * backoff_ratio 0.9
    assert bulkhead.in_use == 0


async def test_a_call_cancelled_for_another_reason_is_no_sample() -> None:
    clock = FakeClock()
    bulkhead = AdaptiveBulkhead(initial=10, minimum=1, maximum=20, clock=clock)
    with anyio.move_on_after(0.01):
        await bulkhead.acall(anyio.sleep_forever)
    assert bulkhead.limit == 10
    assert bulkhead.in_use == 0
