"""Concurrency stress: 16 threads and 1,000 tasks (asyncio and trio) on one policy object.

Each test checks a promise of DESIGN §1.2 that only shows under contention: the bulkhead never
exceeds its limit and never leaks a slot (exceptions, cancellation, threads and tasks at
once); limiters never over-admit; HALF_OPEN admits exactly ``half_open_calls`` trials; a
breaker's counts equal the calls made; an idempotent handler runs once per key. Memory and
Redis (a real redis-server; an async client on asyncio, the sync one in worker threads on trio).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import anyio
import pytest

from resilient import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    SlidingWindow,
    TokenBucket,
    idempotent,
)
from resilient.stores import MemoryStore, RedisStore
from resilient.testing import FakeClock

from .._concurrency import admitted_by_threads
from ._models_support import Boom, record

THREADS = 16
TASKS = 1000
FRESH = itertools.count()
EPOCH_MS = 1_700_000_000_000


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(FRESH)}"


@contextmanager
def sync_store(kind: str, redis_url: str | None) -> Iterator[Any]:
    if kind == "memory":
        yield MemoryStore()
        return
    assert redis_url is not None
    store = RedisStore.from_url(redis_url, socket_timeout=5.0, on_error="raise")
    try:
        yield store
    finally:
        store.client.close()


@asynccontextmanager
async def async_store(kind: str, redis_url: str | None, backend: str) -> AsyncIterator[Any]:
    """A store for async calls: an async Redis client on asyncio, the sync one on trio."""
    if kind == "memory":
        yield MemoryStore()
        return
    assert redis_url is not None
    asynchronous = backend == "asyncio"
    store = RedisStore.from_url(
        redis_url, asynchronous=asynchronous, socket_timeout=5.0, on_error="raise"
    )
    try:
        yield store
    finally:
        if asynchronous:
            await store.client.aclose()
        else:
            store.client.close()


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(store_kind: str, request: pytest.FixtureRequest) -> str | None:
    """The Redis URL when the test runs on Redis (starting the server only then)."""
    if store_kind == "memory":
        return None
    return str(request.getfixturevalue("redis_url"))


# -- bulkhead ----------------------------------------------------------------------------------


class Gauge:
    """Counts calls inside the bulkhead, and the most at once, from threads and tasks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = self.most = self.calls = 0

    def enter(self) -> None:
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1


def test_bulkhead_holds_its_limit_across_16_threads_and_leaks_nothing() -> None:
    bulkhead = Bulkhead(4, max_waiting=THREADS, max_wait=5.0)
    gauge = Gauge()
    rng = random.Random(7)
    plan = [rng.random() < 0.3 for _ in range(THREADS * 200)]
    barrier = threading.Barrier(THREADS)

    def work(fail: bool) -> None:
        gauge.enter()
        try:
            threading.Event().wait(0.0001)
            if fail:
                raise Boom
        finally:
            gauge.leave()

    def hammer(index: int) -> None:
        barrier.wait()
        for fail in plan[index::THREADS]:
            with suppress(Boom):
                bulkhead.call(work, fail)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert gauge.calls == len(plan)  # nobody refused: 16 callers, 4 slots + 16 places in line
    assert 1 <= gauge.most <= 4
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)
    record(
        "test_bulkhead_holds_its_limit_across_16_threads_and_leaks_nothing",
        "bulkhead limit and no leak (threads)",
        calls=gauge.calls,
    )


async def test_bulkhead_holds_its_limit_across_threads_and_tasks_with_cancellation(
    anyio_backend: str,
) -> None:
    """1,000 tasks and 16 threads share one bulkhead; tasks fail and are cancelled at random."""
    bulkhead = Bulkhead(5, max_waiting=TASKS + THREADS, max_wait=10.0)
    gauge = Gauge()
    rng = random.Random(11)
    outcomes = {"ok": 0, "failed": 0, "cancelled": 0}
    stop = threading.Event()

    async def task(fate: str, delay: float) -> None:
        async def work() -> None:
            gauge.enter()
            try:
                await anyio.sleep(delay)
                if fate == "fail":
                    raise Boom
            finally:
                gauge.leave()

        with anyio.CancelScope() as scope:
            if fate == "cancel":
                scope.deadline = anyio.current_time() + rng.random() * 0.05
            try:
                await bulkhead.acall(work)
                outcomes["ok"] += 1
            except Boom:
                outcomes["failed"] += 1
        if scope.cancelled_caught:
            outcomes["cancelled"] += 1

    thread_calls = [0]

    def thread_work() -> None:
        gauge.enter()
        try:
            threading.Event().wait(0.0002)
        finally:
            gauge.leave()

    def thread_loop() -> None:
        while not stop.is_set():
            try:
                bulkhead.call(thread_work)
                with gauge.lock:
                    thread_calls[0] += 1
            except BulkheadFullError:
                pass

    threads = [threading.Thread(target=thread_loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                fate = rng.choice(["ok", "ok", "fail", "cancel"])
                group.start_soon(task, fate, rng.random() * 0.002)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert sum(outcomes.values()) == TASKS
    assert outcomes["cancelled"] > 0
    assert outcomes["failed"] > 0
    assert gauge.most <= 5
    assert gauge.inside == 0
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)
    record(
        "test_bulkhead_holds_its_limit_across_threads_and_tasks_with_cancellation",
        "bulkhead limit and no leak (tasks + threads, exceptions, cancellation)",
        calls=gauge.calls,
        cancelled=outcomes["cancelled"],
    )


# -- rate limiters -----------------------------------------------------------------------------


def limiters(store: Any, clock: FakeClock | None) -> list[Any]:
    """A token bucket and both sliding windows that cannot refill during the test."""
    options = {"store": store, "clock": clock}
    return [
        TokenBucket(0.001, 100, name=fresh("tb"), **options),
        SlidingWindow(100, 3600.0, name=fresh("swc"), **options),
        SlidingWindow(100, 3600.0, precise=True, name=fresh("swl"), **options),
    ]


def test_limiters_never_over_admit_16_threads(store_kind: str, url: str | None) -> None:
    with sync_store(store_kind, url) as store:
        clock = FakeClock(1e9) if store_kind == "memory" else None
        for limiter in limiters(store, clock):
            admitted = admitted_by_threads(limiter, threads=THREADS, calls=40)
            assert admitted == 100, limiter
    record(
        "test_limiters_never_over_admit_16_threads",
        "limiters never over-admit (threads)",
        decisions=3 * THREADS * 40,
    )


async def test_limiters_never_over_admit_1000_tasks(
    store_kind: str, url: str | None, anyio_backend: str
) -> None:
    """1,000 tasks at once, spread over a token bucket and both sliding windows."""
    async with async_store(store_kind, url, anyio_backend) as store:
        clock = FakeClock(1e9) if store_kind == "memory" else None
        chosen = limiters(store, clock)
        admitted = [0] * len(chosen)

        async def one(index: int) -> None:
            await anyio.sleep(0)  # every task starts before any decides
            if (await chosen[index].atry_acquire("shared")).allowed:
                admitted[index] += 1

        async with anyio.create_task_group() as group:
            for task in range(TASKS):
                group.start_soon(one, task % len(chosen))
        assert admitted == [100] * len(chosen)
    record(
        "test_limiters_never_over_admit_1000_tasks",
        "limiters never over-admit (tasks)",
        decisions=TASKS,
    )


# -- circuit breaker ---------------------------------------------------------------------------


def half_open_breaker(store: Any, clock: FakeClock, trials: int) -> CircuitBreaker:
    """A breaker tripped and then HALF_OPEN, with ``trials`` trial slots."""
    breaker = CircuitBreaker(
        fresh("half-open"),
        consecutive_failures=1,
        open_for=5.0,
        half_open_calls=trials,
        clock=clock,
        store=store,
    )
    if isinstance(store, RedisStore):
        breaker._backend.pin = lambda: EPOCH_MS + round(clock.monotonic() * 1000)  # type: ignore[attr-defined]
    with pytest.raises(Boom):
        breaker.call(_fail)
    clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


def _fail() -> None:
    raise Boom


async def _afail() -> None:
    raise Boom


async def ahalf_open_breaker(store: Any, clock: FakeClock, trials: int) -> CircuitBreaker:
    """`half_open_breaker` through the async calls (an async Redis client has no sync ones)."""
    breaker = CircuitBreaker(
        fresh("half-open"),
        consecutive_failures=1,
        open_for=5.0,
        half_open_calls=trials,
        clock=clock,
        store=store,
    )
    if isinstance(store, RedisStore):
        breaker._backend.pin = lambda: EPOCH_MS + round(clock.monotonic() * 1000)  # type: ignore[attr-defined]
    with pytest.raises(Boom):
        await breaker.acall(_afail)
    clock.advance(5.0)
    assert (await breaker.ametrics()).state is CircuitState.HALF_OPEN
    return breaker


def test_half_open_admits_exactly_its_trials_from_16_threads(
    store_kind: str, url: str | None
) -> None:
    with sync_store(store_kind, url) as store:
        clock = FakeClock(1e9)
        breaker = half_open_breaker(store, clock, trials=3)
        barrier = threading.Barrier(THREADS)
        done = threading.Event()
        admitted = [0]
        rejected = [0]
        lock = threading.Lock()

        def trial() -> None:
            with lock:
                admitted[0] += 1
            done.wait(10)  # hold the trial slot until every thread has tried

        def attempt() -> None:
            barrier.wait()
            try:
                breaker.call(trial)
            except CircuitOpenError:
                with lock:
                    rejected[0] += 1

        threads = [threading.Thread(target=attempt) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for _ in range(10_000):
            with lock:
                if admitted[0] + rejected[0] == THREADS or rejected[0] == THREADS - 3:
                    break
            threading.Event().wait(0.001)
        done.set()
        for thread in threads:
            thread.join(30)
        assert admitted[0] == 3
        assert rejected[0] == THREADS - 3
        assert breaker.state is CircuitState.CLOSED  # all three trials succeeded
    record(
        "test_half_open_admits_exactly_its_trials_from_16_threads",
        "half-open admits exactly half_open_calls trials (threads)",
        calls=THREADS,
    )


async def test_half_open_admits_exactly_its_trials_from_1000_tasks(
    store_kind: str, url: str | None, anyio_backend: str
) -> None:
    async with async_store(store_kind, url, anyio_backend) as store:
        clock = FakeClock(1e9)
        breaker = await ahalf_open_breaker(store, clock, trials=3)
        release = anyio.Event()
        counts = {"admitted": 0, "rejected": 0}

        def tried(outcome: str) -> None:
            counts[outcome] += 1
            if counts["admitted"] + counts["rejected"] == TASKS:
                release.set()  # every task has tried: the trials may end

        async def trial() -> None:
            tried("admitted")
            await release.wait()

        async def attempt() -> None:
            try:
                await breaker.acall(trial)
            except CircuitOpenError:
                tried("rejected")

        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(attempt)
        assert counts == {"admitted": 3, "rejected": TASKS - 3}
        metrics = await breaker.ametrics()
        assert metrics.state is CircuitState.CLOSED
    record(
        "test_half_open_admits_exactly_its_trials_from_1000_tasks",
        "half-open admits exactly half_open_calls trials (tasks)",
        calls=TASKS,
    )


def counting_breaker(store: Any, size: int) -> CircuitBreaker:
    """A breaker that counts every call and never trips (the window never reaches minimum)."""
    return CircuitBreaker(
        fresh("counts"),
        window=CountWindow(size + 1),
        minimum_calls=size + 1,
        failure_rate=1.0,
        store=store,
    )


def test_breaker_counts_equal_the_calls_of_16_threads(store_kind: str, url: str | None) -> None:
    calls_each = 100 if store_kind == "redis" else 400
    total = THREADS * calls_each
    with sync_store(store_kind, url) as store:
        breaker = counting_breaker(store, total)
        failed = [0]
        lock = threading.Lock()
        barrier = threading.Barrier(THREADS)

        def hammer(seed: int) -> None:
            rng = random.Random(seed)
            barrier.wait()
            for _ in range(calls_each):
                if rng.random() < 0.4:
                    with lock:
                        failed[0] += 1
                    with pytest.raises(Boom):
                        breaker.call(_fail)
                else:
                    breaker.call(int)

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        metrics = breaker.metrics()
        assert metrics.state is CircuitState.CLOSED
        assert (metrics.calls, metrics.failures) == (total, failed[0])
    record(
        "test_breaker_counts_equal_the_calls_of_16_threads",
        "breaker counts equal the calls made (threads)",
        calls=total,
    )


async def test_breaker_counts_equal_the_calls_of_1000_tasks(
    store_kind: str, url: str | None, anyio_backend: str
) -> None:
    async with async_store(store_kind, url, anyio_backend) as store:
        breaker = counting_breaker(store, TASKS)
        rng = random.Random(3)
        plan = [rng.random() < 0.4 for _ in range(TASKS)]

        async def work(fail: bool) -> None:
            await anyio.sleep(0)
            if fail:
                raise Boom

        async def one(fail: bool) -> None:
            with suppress(Boom):
                await breaker.acall(work, fail)

        async with anyio.create_task_group() as group:
            for fail in plan:
                group.start_soon(one, fail)
        metrics = await breaker.ametrics()
        assert metrics.state is CircuitState.CLOSED
        assert (metrics.calls, metrics.failures) == (TASKS, sum(plan))
    record(
        "test_breaker_counts_equal_the_calls_of_1000_tasks",
        "breaker counts equal the calls made (tasks)",
        calls=TASKS,
    )


# -- idempotency -------------------------------------------------------------------------------


def test_idempotent_handler_runs_once_per_key_from_16_threads(
    store_kind: str, url: str | None
) -> None:
    with sync_store(store_kind, url) as store:
        runs: dict[str, int] = {}
        lock = threading.Lock()
        namespace = fresh("idem")

        @idempotent(store=store, key=lambda key: key, namespace=namespace, lock_timeout=30)
        def handle(key: str) -> str:
            with lock:
                runs[key] = runs.get(key, 0) + 1
            threading.Event().wait(0.002)
            return f"done {key}"

        keys = [f"k{i}" for i in range(20)]
        results: list[tuple[str, str]] = []
        barrier = threading.Barrier(THREADS)

        def hammer(seed: int) -> None:
            order = keys[:]
            random.Random(seed).shuffle(order)
            barrier.wait()
            for key in order:
                result = handle(key)
                with lock:
                    results.append((key, result))

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert runs == dict.fromkeys(keys, 1)
        assert len(results) == THREADS * len(keys)
        assert all(result == f"done {key}" for key, result in results)
    record(
        "test_idempotent_handler_runs_once_per_key_from_16_threads",
        "idempotent handler runs once per key (threads)",
        calls=THREADS * len(keys),
    )


async def test_idempotent_handler_runs_once_per_key_from_1000_tasks(
    store_kind: str, url: str | None, anyio_backend: str
) -> None:
    async with async_store(store_kind, url, anyio_backend) as store:
        runs: dict[str, int] = {}
        namespace = fresh("idem")

        @idempotent(store=store, key=lambda key: key, namespace=namespace, lock_timeout=30)
        async def handle(key: str) -> str:
            runs[key] = runs.get(key, 0) + 1
            await anyio.sleep(0.01)
            return f"done {key}"

        keys = [f"k{i % 50}" for i in range(TASKS)]
        results: list[tuple[str, str]] = []

        async def one(key: str) -> None:
            results.append((key, await handle(key)))

        async with anyio.create_task_group() as group:
            for key in keys:
                group.start_soon(one, key)
        assert runs == dict.fromkeys(set(keys), 1)
        assert len(results) == TASKS
        assert all(result == f"done {key}" for key, result in results)
    record(
        "test_idempotent_handler_runs_once_per_key_from_1000_tasks",
        "idempotent handler runs once per key (tasks)",
        calls=TASKS,
    )
