"""Hedge: a slow call gets a second attempt; the first success wins, the others are cancelled."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import resilient
from resilient import DeadlineExceeded, Hedge, Pipeline, Retry
from resilient._events import Event, HedgeStarted
from resilient.instrumentation import subscribe, unsubscribe

SLOW = 60.0  # far beyond any test's bound: an attempt that takes this long was not cancelled


class Service:
    """Answers its first request only after ``first`` seconds, every later one after ``fast``."""

    def __init__(self, first: float = SLOW, fast: float = 0.01) -> None:
        self.first = first
        self.fast = fast
        self.calls = 0
        self.cancelled: list[int] = []
        self.cleaned: list[int] = []
        self.results: list[int] = []

    async def __call__(self, value: int) -> int:
        self.calls += 1
        number = self.calls
        try:
            await anyio.sleep(self.first if number == 1 else self.fast)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(number)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0)  # cleanup that awaits, as closing a connection does
            self.cleaned.append(number)
        self.results.append(number)
        return value * 10 + number


async def test_a_slow_first_response_is_overtaken_by_the_hedge() -> None:
    service = Service(first=SLOW, fast=0.01)
    hedge = Hedge(0.05)
    start = time.monotonic()
    result = await hedge.acall(service, 4)
    elapsed = time.monotonic() - start
    assert result == 42  # the second attempt answered
    assert service.results == [2]  # exactly one result
    assert service.cancelled == [1]
    assert sorted(service.cleaned) == [1, 2]  # the slow attempt's cleanup ran before returning
    assert 0.05 <= elapsed < SLOW / 4  # ≈ delay + the fast response, nowhere near the slow one


def test_latency_is_the_hedge_delay_plus_the_fast_response_on_virtual_time() -> None:
    import trio
    import trio.testing

    # trio's virtual clock (autojump) makes the timing exact without really waiting.
    clock = trio.testing.MockClock(autojump_threshold=0)
    service = Service(first=SLOW, fast=0.2)

    async def main() -> tuple[int, float]:
        start = trio.current_time()
        result = await Hedge(0.5).acall(service, 1)
        return result, trio.current_time() - start

    result, elapsed = trio.run(main, clock=clock)
    assert result == 12
    assert elapsed == pytest.approx(0.7)
    assert service.cancelled == [1]
    assert sorted(service.cleaned) == [1, 2]


async def test_a_fast_first_response_starts_no_hedge() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        service = Service(first=0.0)
        assert await Hedge(5.0).acall(service, 1) == 11
    finally:
        unsubscribe(events.append)
    assert service.calls == 1
    assert not [e for e in events if isinstance(e, HedgeStarted)]


async def test_hedge_started_events_count_the_attempts() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        calls = 0

        async def slow_twice() -> str:
            nonlocal calls
            calls += 1
            await anyio.sleep(SLOW if calls < 3 else 0)
            return "third"

        assert await Hedge(0.01, max_hedged=2, name="lookup").acall(slow_twice) == "third"
    finally:
        unsubscribe(events.append)
    started = [e for e in events if isinstance(e, HedgeStarted)]
    assert [(e.policy, e.name, e.attempt) for e in started] == [
        ("hedge", "lookup", 2),
        ("hedge", "lookup", 3),
    ]


async def test_at_most_max_hedged_extra_attempts() -> None:
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.2)
        return "done"

    assert await Hedge(0.01, max_hedged=2).acall(slow) == "done"
    assert calls == 3


async def test_a_failed_attempt_starts_the_next_at_once() -> None:
    calls = 0

    async def first_fails() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("reset")
        return "ok"

    start = time.monotonic()
    assert await Hedge(SLOW).acall(first_fails) == "ok"  # no waiting for the 60 s delay
    assert time.monotonic() - start < SLOW / 4


async def test_when_every_attempt_fails_the_last_failure_is_raised() -> None:
    errors = [ValueError("first"), KeyError("second")]
    calls = 0

    async def always_fails() -> None:
        nonlocal calls
        calls += 1
        raise errors[calls - 1]

    with pytest.raises(KeyError) as caught:
        await Hedge(0.01).acall(always_fails)
    assert caught.value is errors[1]
    assert calls == 2


async def test_a_slow_failure_after_a_fast_failure_is_the_one_raised() -> None:
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        number = calls
        await anyio.sleep(0.2 if number == 1 else 0)
        raise RuntimeError(f"attempt {number}")

    with pytest.raises(RuntimeError, match="attempt 1"):
        await Hedge(0.01).acall(fails)


async def test_no_hedge_starts_past_the_deadline() -> None:
    service = Service(first=SLOW)
    with pytest.raises(DeadlineExceeded):
        async with resilient.timeout(0.1):
            await Hedge(0.5).acall(service, 1)  # the hedge would start after the deadline
    assert service.calls == 1
    assert service.cancelled == [1]
    assert service.cleaned == [1]


async def test_a_hedge_within_the_deadline_still_starts() -> None:
    service = Service(first=SLOW)
    async with resilient.timeout(SLOW / 2):
        assert await Hedge(0.01).acall(service, 1) == 12


async def test_cancelling_the_caller_cancels_and_awaits_every_attempt() -> None:
    service = Service(first=SLOW, fast=SLOW)
    with anyio.move_on_after(0.2):
        await Hedge(0.01).acall(service, 1)
    assert sorted(service.cancelled) == [1, 2]
    assert sorted(service.cleaned) == [1, 2]


async def test_decorating_an_async_function_keeps_it_and_hedges_it() -> None:
    service = Service(first=SLOW)

    @Hedge(0.01)
    async def get(value: int) -> int:
        """Docstring kept."""
        return await service(value)

    assert get.__name__ == "get"
    assert get.__doc__ == "Docstring kept."
    assert await get(3) == 32


async def test_hedge_in_a_pipeline_under_retry() -> None:
    service = Service(first=SLOW)
    pipeline = Pipeline(Retry(attempts=2), Hedge(0.01))
    assert await pipeline.acall(service, 5) == 52


def test_sync_use_is_a_type_error() -> None:
    hedge = Hedge(0.1)

    def sync() -> int:
        return 1

    with pytest.raises(TypeError, match="async only"):
        hedge.call(sync)
    with pytest.raises(TypeError, match="async only"):
        hedge(sync)
    with pytest.raises(TypeError, match="async only"), hedge:
        pass
    with pytest.raises(TypeError, match="async only"):
        Pipeline(Hedge(0.1)).call(sync)


async def test_async_with_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="async only"):
        async with Hedge(0.1):
            pass


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"delay": -1}, ValueError, "delay"),
        ({"delay": float("nan")}, ValueError, "delay"),
        ({"delay": float("inf")}, ValueError, "delay"),
        ({"delay": "1"}, TypeError, "delay"),
        ({"delay": True}, TypeError, "delay"),
        ({"delay": 1, "max_hedged": 0}, ValueError, "max_hedged"),
        ({"delay": 1, "max_hedged": 1.5}, TypeError, "max_hedged"),
        ({"delay": 1, "name": 3}, TypeError, "name"),
        ({"delay": 1, "clock": object()}, TypeError, "clock"),
    ],
)
def test_bad_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    with pytest.raises(error, match=argument):
        Hedge(**kwargs)


async def test_delay_zero_starts_every_attempt_at_once() -> None:
    started: list[int] = []

    async def record() -> int:
        started.append(len(started) + 1)
        await anyio.sleep(0.05)
        return len(started)

    assert await Hedge(0, max_hedged=3).acall(record) == 4
    assert started == [1, 2, 3, 4]
