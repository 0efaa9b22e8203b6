"""Cancellation safety: an async call cancelled at every await point leaves nothing taken.

For each scenario the call runs in a task under a cancel scope, and a controller cancels that
scope after ``k`` of its own scheduling steps, for k = 0, 1, 2, ... until the call finishes
before the cancellation comes. So the cancellation lands at each await point of the call in
turn: a timeout's scope, a retry's sleep, a bulkhead's queue, a rate limiter's wait, a
half-open trial, an idempotent call's claim and run, and Redis round trips (there a step is a
short real sleep, as I/O does not follow the event loop's steps). After every run, whether it
was cancelled or not, the scenario checks that no bulkhead slot, trial slot or idempotency lease
is left taken, and that the policies still work. Every test runs on asyncio and trio.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from resilient import (
    Backoff,
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    CountWindow,
    Pipeline,
    Retry,
    SlidingWindow,
    Timeout,
    current_deadline,
    idempotent,
)
from resilient.stores import MemoryStore, RedisStore
from resilient.testing import FakeClock

from ._models_support import Boom, record

FRESH = itertools.count()
EPOCH_MS = 1_700_000_000_000


async def cancelled_after(
    steps: int, call: Callable[[], Awaitable[None]], step: Callable[[], Awaitable[None]]
) -> bool:
    """Run ``call`` in a task and cancel it after ``steps`` steps; True if it finished first."""
    finished = False
    scope = anyio.CancelScope()

    async def target() -> None:
        nonlocal finished
        with scope:
            await call()
            finished = True

    async with anyio.create_task_group() as group:
        group.start_soon(target)
        for _ in range(steps):
            if finished:
                break
            await step()
        scope.cancel()
    return finished


async def sweep(
    scenario: Callable[[], Any], step: Callable[[], Awaitable[None]] | None = None, limit: int = 400
) -> tuple[int, int]:
    """Cancel a fresh ``scenario()`` after k steps, for every k until one finishes twice.

    ``scenario()`` returns ``(call, check)``; ``check(finished)`` runs after every attempt.
    Returns (attempts, how many were cancelled).
    """
    step = step or anyio.lowlevel.checkpoint
    cancelled = 0
    finished_in_a_row = 0
    for k in range(limit):
        call, check = scenario()
        finished = await cancelled_after(k, call, step)
        await check(finished)
        if finished:
            finished_in_a_row += 1
            if finished_in_a_row == 2:
                return k + 1, cancelled
        else:
            cancelled += 1
            finished_in_a_row = 0
    raise AssertionError(f"the call never finished within {limit} steps")


async def checkpoints(count: int) -> None:
    for _ in range(count):
        await anyio.lowlevel.checkpoint()


def done(name: str, attempts: int, cancelled: int) -> None:
    assert cancelled >= 1  # at least one await point was hit
    record(name, "cancellation leaves nothing taken", attempts=attempts, cancelled=cancelled)


# -- scenarios in memory -----------------------------------------------------------------------


async def test_cancelled_in_timeout_and_bulkhead_queue_leaves_no_slot() -> None:
    """Timeout(Bulkhead): cancelled in the queue, or inside; deadline and slots restored."""

    def scenario() -> Any:
        bulkhead = Bulkhead(1, max_waiting=3)
        pipeline = Pipeline(Timeout(30.0), bulkhead)
        seen: list[object] = []

        async def holder() -> None:
            async with bulkhead:
                await checkpoints(3)

        async def work() -> None:
            await checkpoints(3)

        async def call() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(holder)
                await anyio.lowlevel.checkpoint()  # the holder takes the slot first
                try:
                    await pipeline.acall(work)
                finally:
                    seen.append(current_deadline())

        async def check(finished: bool) -> None:
            assert seen == [None] or not seen  # the deadline scope is gone after the call
            assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)
            async with bulkhead:  # still usable
                pass

        return call, check

    done("test_cancelled_in_timeout_and_bulkhead_queue_leaves_no_slot", *await sweep(scenario))


async def test_cancelled_in_retry_sleep_counts_nothing_and_stops_retrying() -> None:
    """Retry(Bulkhead(Breaker)) on a failing call: cancelled in a sleep or an attempt."""

    def scenario() -> Any:
        clock = FakeClock(1e9)
        bulkhead = Bulkhead(1)
        breaker = CircuitBreaker(
            f"retry-{next(FRESH)}", window=CountWindow(50), minimum_calls=50, clock=clock
        )
        retry = Retry(attempts=4, backoff=Backoff.constant(1.0, jitter="none"), clock=clock)
        pipeline = Pipeline(retry, bulkhead, breaker)
        attempts = {"started": 0, "failed": 0}

        async def attempt() -> None:
            attempts["started"] += 1
            await checkpoints(2)
            attempts["failed"] += 1
            raise Boom

        async def call() -> None:
            with pytest.raises(Boom):
                await pipeline.acall(attempt)

        async def check(finished: bool) -> None:
            assert bulkhead.in_use == 0
            metrics = breaker.metrics()
            # A cancelled attempt counts neither way; every failed one counts once.
            assert (metrics.calls, metrics.failures) == (attempts["failed"],) * 2
            assert attempts["started"] - attempts["failed"] in (0, 1)
            if finished:
                assert attempts == {"started": 4, "failed": 4}
            assert clock.sleeps == [1.0] * len(clock.sleeps)

        return call, check

    done("test_cancelled_in_retry_sleep_counts_nothing_and_stops_retrying", *await sweep(scenario))


async def test_cancelled_in_limiter_wait_takes_nothing() -> None:
    def scenario() -> Any:
        clock = FakeClock(1e9)
        limiter = SlidingWindow(2, 10.0, precise=True, clock=clock)
        assert limiter.try_acquire(cost=2).allowed  # full until 1e9 + 10
        start = clock.monotonic()
        granted = []

        async def call() -> None:
            granted.append(await limiter.aacquire(cost=1, max_wait=60.0))

        async def check(finished: bool) -> None:
            assert bool(granted) is finished
            expired = clock.monotonic() >= start + 10.0
            free = 0
            while free < 2 and limiter.try_acquire().allowed:
                free += 1
            assert free == (2 if expired else 0) - (1 if finished else 0)

        return call, check

    done("test_cancelled_in_limiter_wait_takes_nothing", *await sweep(scenario))


async def test_cancelled_half_open_trial_gives_its_slot_back() -> None:
    def scenario() -> Any:
        clock = FakeClock(0.0)
        breaker = CircuitBreaker(
            f"trial-{next(FRESH)}", consecutive_failures=1, open_for=5.0, clock=clock
        )
        with pytest.raises(Boom):
            breaker.call(_fail)
        clock.advance(5.0)

        async def trial() -> None:
            await checkpoints(4)

        async def call() -> None:
            await breaker.acall(trial)

        async def check(finished: bool) -> None:
            if finished:
                assert breaker.state is CircuitState.CLOSED
                return
            assert breaker.state is CircuitState.HALF_OPEN
            await breaker.acall(anyio.lowlevel.checkpoint)  # the slot is free for a new trial
            assert breaker.state is CircuitState.CLOSED

        return call, check

    done("test_cancelled_half_open_trial_gives_its_slot_back", *await sweep(scenario))


def _fail() -> None:
    raise Boom


async def test_cancelled_idempotent_call_leaves_no_lease() -> None:
    def scenario() -> Any:
        runs: list[str] = []

        returned: list[str] = []

        @idempotent(store=MemoryStore(), key=lambda order: order, wait=0)
        async def charge(order: str) -> str:
            runs.append(order)
            await checkpoints(3)
            returned.append(order)
            return f"charged {order}"

        async def call() -> None:
            assert await charge("o-1") == "charged o-1"

        async def check(finished: bool) -> None:
            stored = bool(returned)  # a handler that returned has its result stored
            before = len(runs)
            # Not IdempotencyInProgress: a cancelled call released its claim.
            assert await charge("o-1") == "charged o-1"
            assert len(runs) == before + (0 if stored else 1)

        return call, check

    done("test_cancelled_idempotent_call_leaves_no_lease", *await sweep(scenario))


# -- scenarios against Redis -------------------------------------------------------------------


async def _redis_step() -> None:
    await anyio.sleep(0.0002)


@pytest.fixture
async def redis_store(redis_url: str, anyio_backend: str) -> Any:
    """An async client on asyncio, the sync one (in worker threads) on trio."""
    asynchronous = anyio_backend == "asyncio"
    store = RedisStore.from_url(
        redis_url, asynchronous=asynchronous, socket_timeout=5.0, on_error="raise"
    )
    yield store
    if asynchronous:
        await store.client.aclose()
    else:
        store.client.close()


async def test_cancelled_redis_half_open_trial_gives_its_slot_back(redis_store: Any) -> None:
    async def scenario_setup() -> Any:
        clock = FakeClock(0.0)
        breaker = CircuitBreaker(
            f"redis-trial-{next(FRESH)}",
            consecutive_failures=1,
            open_for=5.0,
            clock=clock,
            store=redis_store,
        )
        breaker._backend.pin = lambda: EPOCH_MS + round(clock.monotonic() * 1000)  # type: ignore[attr-defined]

        async def fail() -> None:
            raise Boom

        with pytest.raises(Boom):
            await breaker.acall(fail)
        clock.advance(5.0)
        return breaker

    breakers = [await scenario_setup() for _ in range(120)]

    def scenario() -> Any:
        breaker = breakers.pop()
        returned: list[bool] = []

        async def trial() -> None:
            await anyio.lowlevel.checkpoint()
            returned.append(True)

        async def call() -> None:
            await breaker.acall(trial)

        async def check(finished: bool) -> None:
            state = (await breaker.ametrics()).state
            if returned:
                # The trial succeeded, so its outcome was recorded, even if the cancellation
                # came while the outcome was being sent to Redis.
                assert state is CircuitState.CLOSED
                return
            assert state is CircuitState.HALF_OPEN
            await breaker.acall(anyio.lowlevel.checkpoint)  # not rejected: the slot came back
            assert (await breaker.ametrics()).state is CircuitState.CLOSED

        return call, check

    done(
        "test_cancelled_redis_half_open_trial_gives_its_slot_back",
        *await sweep(scenario, _redis_step, limit=120),
    )


async def test_cancelled_redis_idempotent_call_leaves_no_lease(redis_store: Any) -> None:
    runs: list[str] = []
    namespace = f"cancel-{next(FRESH)}"

    returned: list[str] = []

    @idempotent(store=redis_store, key=lambda order: order, wait=0, namespace=namespace)
    async def charge(order: str) -> str:
        runs.append(order)
        await anyio.lowlevel.checkpoint()
        returned.append(order)
        return f"charged {order}"

    orders = (f"o-{i}" for i in itertools.count())

    def scenario() -> Any:
        order = next(orders)

        async def call() -> None:
            assert await charge(order) == f"charged {order}"

        async def check(finished: bool) -> None:
            stored = order in returned  # a handler that returned has its result stored
            before = runs.count(order)
            assert await charge(order) == f"charged {order}"  # not IdempotencyInProgress
            assert runs.count(order) == before + (0 if stored else 1)

        return call, check

    done(
        "test_cancelled_redis_idempotent_call_leaves_no_lease",
        *await sweep(scenario, _redis_step, limit=200),
    )
