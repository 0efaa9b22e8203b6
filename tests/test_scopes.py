"""A guard's exit finds its own entry wherever it runs, and returns what it holds exactly once.

Entry and exit of a ``with`` block may run in different contexts: two interleaved generators
that each hold a block, a sync ``yield`` dependency whose entry and exit run in two worker
threads (``anyio.to_thread.run_sync``, as FastAPI does), an exit in a copied context.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

import resilient
from resilient import AdaptiveBulkhead, CircuitBreaker, CircuitState
from resilient.testing import FakeClock


def half_open(name: str, clock: FakeClock) -> CircuitBreaker:
    """A breaker that has just gone HALF_OPEN with one trial slot."""
    breaker = CircuitBreaker(name, consecutive_failures=1, open_for=1.0, clock=clock)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


def test_interleaved_generators_each_return_their_own_trial() -> None:
    clock = FakeClock()
    first, second = half_open("first", clock), half_open("second", clock)

    def hold(breaker: CircuitBreaker) -> Iterator[None]:
        with breaker:
            yield

    a, b = hold(first), hold(second)
    next(a)
    next(b)
    for gen in (a, b):  # a's block exits while b's is the innermost in this context
        with pytest.raises(StopIteration):
            next(gen)
    assert first.state is CircuitState.CLOSED
    assert second.state is CircuitState.CLOSED


def test_interleaved_generators_on_one_breaker_keep_their_start_times() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "slow", slow_call_rate=1.0, slow_call_duration=1.0, minimum_calls=2, clock=clock
    )

    def hold() -> Iterator[None]:
        with breaker:
            yield

    early, late = hold(), hold()
    next(early)
    clock.advance(5.0)
    next(late)
    with pytest.raises(StopIteration):  # the early block exits first, after 5 s: slow
        next(early)
    assert breaker.metrics().slow_calls == 1
    with pytest.raises(StopIteration):  # the late one after 0 s: fast
        next(late)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.slow_calls) == (2, 1)


def test_exit_in_a_copied_context_returns_the_trial() -> None:
    clock = FakeClock()
    breaker = half_open("copied", clock)
    before = contextvars.copy_context()
    breaker.__enter__()
    before.run(breaker.__exit__, None, None, None)
    assert breaker.state is CircuitState.CLOSED


def test_an_exit_without_any_entry_raises_and_changes_nothing() -> None:
    clock = FakeClock()
    breaker = half_open("extra", clock)
    with pytest.raises(RuntimeError, match="without a matching enter"):
        breaker.__exit__(None, None, None)
    with breaker:
        pass
    assert breaker.state is CircuitState.CLOSED


async def test_enter_and_exit_in_two_worker_threads_return_the_trial() -> None:
    clock = FakeClock()
    breaker = half_open("threads", clock)

    def dependency() -> Iterator[None]:
        with breaker:
            yield

    gen = dependency()
    await anyio.to_thread.run_sync(next, gen)
    await anyio.to_thread.run_sync(next, gen, None)
    assert breaker.state is CircuitState.CLOSED


async def test_interleaved_async_generators_each_return_their_own_trial() -> None:
    clock = FakeClock()
    first, second = half_open("afirst", clock), half_open("asecond", clock)

    async def hold(breaker: CircuitBreaker) -> AsyncIterator[None]:
        async with breaker:
            yield

    a, b = hold(first), hold(second)
    await a.__anext__()
    await b.__anext__()
    for gen in (a, b):
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
    assert first.state is CircuitState.CLOSED
    assert second.state is CircuitState.CLOSED


async def test_adaptive_bulkhead_permit_comes_back_from_another_worker_thread() -> None:
    bulkhead = AdaptiveBulkhead(initial=1, minimum=1, maximum=1, clock=FakeClock())

    def dependency() -> Iterator[None]:
        with bulkhead:
            yield

    gen = dependency()
    await anyio.to_thread.run_sync(next, gen)
    assert bulkhead.in_use == 1
    await anyio.to_thread.run_sync(next, gen, None)
    assert bulkhead.in_use == 0
    with bulkhead:  # the slot is free again
        pass


def test_adaptive_bulkhead_interleaved_generators_release_both_permits() -> None:
    first = AdaptiveBulkhead(initial=1, minimum=1, maximum=1, clock=FakeClock())
    second = AdaptiveBulkhead(initial=1, minimum=1, maximum=1, clock=FakeClock())

    def hold(bulkhead: AdaptiveBulkhead) -> Iterator[None]:
        with bulkhead:
            yield

    a, b = hold(first), hold(second)
    next(a)
    next(b)
    for gen in (a, b):
        with pytest.raises(StopIteration):
            next(gen)
    assert first.in_use == 0
    assert second.in_use == 0


def test_sync_timeouts_in_interleaved_generators_leave_no_deadline_behind() -> None:
    def hold(seconds: float) -> Iterator[float | None]:
        with resilient.timeout(seconds):
            yield resilient.remaining()

    a, b = hold(100.0), hold(200.0)
    next(a)
    next(b)
    for gen in (a, b):
        with pytest.raises(StopIteration):
            next(gen)
    assert resilient.current_deadline() is None


async def test_sync_timeout_entered_and_exited_in_two_worker_threads() -> None:
    def dependency() -> Iterator[None]:
        with resilient.timeout(100.0):
            yield

    gen = dependency()
    await anyio.to_thread.run_sync(next, gen)
    await anyio.to_thread.run_sync(next, gen, None)
    assert resilient.current_deadline() is None


def test_an_exit_from_another_frame_and_another_context_still_returns_the_trial() -> None:
    clock = FakeClock()
    breaker = half_open("elsewhere", clock)

    def enter() -> None:
        breaker.__enter__()

    def leave() -> None:
        breaker.__exit__(None, None, None)

    contextvars.copy_context().run(enter)
    contextvars.copy_context().run(leave)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(RuntimeError, match="without a matching enter"):
        leave()
