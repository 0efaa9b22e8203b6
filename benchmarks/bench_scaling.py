"""Scaling: throughput with more threads and more asyncio tasks, and limiter memory per key.

Threads (1 to 8): T threads start together (a barrier) and share ``SETTINGS.scaling_operations``
operations on one shared object; throughput is operations / wall time. On CPython the GIL lets
one thread run Python at a time, so the best a thread-safe object can do is keep its throughput
flat as threads are added (no lock convoy); the peers show what the same workload does with
theirs. Each point is the median of three runs (one in the quick run).

asyncio tasks (1 to 1,000): N tasks share the operations; every operation awaits
``asyncio.sleep(0)`` inside the guard, so the tasks interleave and, with more than ten tasks,
the bulkheads (10 slots) and semaphores make tasks wait. The reference curve is the
``sleep(0)`` alone. The breaker and the bulkhead are measured both as ``async with`` blocks and
as decorators: the two take different paths (a block records its frame so that its exit finds
its own entry when many tasks are inside the same object).

Memory per key: a limiter is asked once for each of 10^6 new keys (10^5 in the quick run),
and the traced memory (``tracemalloc``) it grew by is read after 10^3, 10^4, ... keys; over the
number of keys, that is the cost of one key. The key strings are made beforehand and not
counted. Quotas are long (1,000 per hour, a token every 100 s) so that no key expires during
the measurement. limits' curves stop at 10^5 keys (10^4 in the quick run; see ``_memory``).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable

from ._harness import SETTINGS, Report


def _threads(fn: Callable[[], object], threads: int, operations: int) -> float:
    """Operations per second of ``threads`` threads sharing ``operations`` calls of ``fn``."""
    each = max(1, operations // threads)
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        loop = range(each)
        barrier.wait()
        for _ in loop:
            fn()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return each * threads / (time.perf_counter() - start)


def _tasks(
    make: Callable[[], Callable[[], Awaitable[object]]], tasks: int, operations: int
) -> float:
    """Operations per second of ``tasks`` asyncio tasks sharing ``operations`` awaits."""
    each = max(1, operations // tasks)

    async def main() -> float:
        op = make()  # built inside the loop: semaphores bind to it

        async def worker() -> None:
            for _ in range(each):
                await op()

        await op()  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return each * tasks / (time.perf_counter() - start)

    return asyncio.run(main())


def _median_of_runs(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(SETTINGS.scaling_repeats))


def _thread_scaling(report: Report) -> None:
    import circuitbreaker
    from limits import RateLimitItemPerSecond, storage, strategies

    from resilient import Bulkhead, CircuitBreaker, TokenBucket

    bucket = TokenBucket(rate=1e6, capacity=10**9)
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    huge = RateLimitItemPerSecond(10**9)
    breaker = CircuitBreaker("scaling", minimum_calls=10**9)

    def work() -> int:
        return 1

    ours_breaker = breaker(work)
    fab = circuitbreaker.circuit(failure_threshold=10**9)(work)
    bulkhead = Bulkhead(8)
    semaphore = threading.BoundedSemaphore(8)

    def guarded() -> int:
        with bulkhead:
            return 1

    def semaphored() -> int:
        with semaphore:
            return 1

    curves = {
        "rate limiter": {
            "resilient TokenBucket.try_acquire('k')": lambda: bucket.try_acquire("k"),
            "limits FixedWindowRateLimiter.hit": lambda: fixed.hit(huge, "k"),
        },
        "circuit breaker (closed)": {
            "resilient CircuitBreaker": ours_breaker,
            "circuitbreaker @circuit": fab,
        },
        "bulkhead": {
            "resilient Bulkhead(8)": guarded,
            "threading.BoundedSemaphore(8)": semaphored,
        },
    }
    operations = SETTINGS.scaling_operations
    for kind, candidates in curves.items():
        for name, fn in candidates.items():
            ys = [
                _median_of_runs(lambda fn=fn, t=t: _threads(fn, t, operations))
                for t in SETTINGS.threads
            ]
            report.curve(
                f"{kind}: threads",
                name,
                SETTINGS.threads,
                ys,
                xlabel="threads",
                unit="operations per second",
            )


def _task_scaling(report: Report) -> None:
    import aiolimiter

    from resilient import Bulkhead, CircuitBreaker, TokenBucket

    sleep = asyncio.sleep

    def bare() -> Callable[[], Awaitable[object]]:
        return lambda: sleep(0)

    def ours_limiter() -> Callable[[], Awaitable[object]]:
        bucket = TokenBucket(rate=1e6, capacity=10**9)

        async def op() -> None:
            await bucket.atry_acquire("k")
            await sleep(0)

        return op

    def aiolimiter_op() -> Callable[[], Awaitable[object]]:
        limiter = aiolimiter.AsyncLimiter(max_rate=1e12, time_period=1)

        async def op() -> None:
            async with limiter:
                await sleep(0)

        return op

    def ours_breaker() -> Callable[[], Awaitable[object]]:
        breaker = CircuitBreaker("scaling-async", minimum_calls=10**9)

        async def op() -> None:
            async with breaker:
                await sleep(0)

        return op

    def ours_breaker_decorated() -> Callable[[], Awaitable[object]]:
        breaker = CircuitBreaker("scaling-async-decorated", minimum_calls=10**9)

        @breaker
        async def op() -> None:
            await sleep(0)

        return op

    def ours_bulkhead_decorated() -> Callable[[], Awaitable[object]]:
        bulkhead = Bulkhead(10, max_waiting=10_000)

        @bulkhead
        async def op() -> None:
            await sleep(0)

        return op

    def ours_bulkhead() -> Callable[[], Awaitable[object]]:
        bulkhead = Bulkhead(10, max_waiting=10_000)

        async def op() -> None:
            async with bulkhead:
                await sleep(0)

        return op

    def semaphore() -> Callable[[], Awaitable[object]]:
        sem = asyncio.Semaphore(10)

        async def op() -> None:
            async with sem:
                await sleep(0)

        return op

    candidates = {
        "asyncio.sleep(0) alone": bare,
        "resilient TokenBucket.atry_acquire": ours_limiter,
        "aiolimiter AsyncLimiter": aiolimiter_op,
        "resilient CircuitBreaker (closed), async with": ours_breaker,
        "resilient CircuitBreaker (closed), decorator": ours_breaker_decorated,
        "resilient Bulkhead(10), async with": ours_bulkhead,
        "resilient Bulkhead(10), decorator": ours_bulkhead_decorated,
        "asyncio.Semaphore(10)": semaphore,
    }
    operations = SETTINGS.task_operations
    for name, make in candidates.items():
        ys = [
            _median_of_runs(lambda make=make, n=n: _tasks(make, n, operations))
            for n in SETTINGS.tasks
        ]
        report.curve(
            "asyncio tasks",
            name,
            SETTINGS.tasks,
            ys,
            xlabel="concurrent tasks",
            unit="operations per second",
        )


def bytes_per_key(acquire: Callable[[str], object], keys: list[str]) -> float:
    """Traced bytes held after ``acquire(key)`` for every key, per key."""
    return bytes_per_key_curve(acquire, keys, [len(keys)])[0]


def bytes_per_key_curve(
    acquire: Callable[[str], object], keys: list[str], checkpoints: list[int]
) -> list[float]:
    """Traced bytes per key after the first ``n`` keys were acquired, for each ``n``.

    One pass over ``keys`` (made beforehand, so their strings are not counted), reading the
    traced memory at every checkpoint.
    """
    gc.collect()
    tracemalloc.start()
    values = []
    try:
        before = tracemalloc.get_traced_memory()[0]
        done = 0
        for n in checkpoints:
            for key in keys[done:n]:
                acquire(key)
            done = n
            gc.collect()
            values.append((tracemalloc.get_traced_memory()[0] - before) / n)
    finally:
        tracemalloc.stop()
    return values


def _memory(report: Report) -> None:
    from limits import RateLimitItemPerHour, storage, strategies

    from resilient import SlidingWindow, TokenBucket
    from resilient.stores import MemoryStore

    sizes = [10**e for e in range(3, SETTINGS.max_keys_exponent + 1)]
    # limits' MemoryStorage scans every key for expiry in a thread every 10 ms, so each hit
    # slows down as keys are added: beyond 10^5 keys filling it takes minutes. Its curves stop
    # there (at 10^4 in the quick run, which keeps only its fixed window).
    peer_sizes = [n for n in sizes if n <= (10**4 if SETTINGS.quick else 10**5)]
    hourly = RateLimitItemPerHour(1000)
    keys = [f"user:{i}" for i in range(sizes[-1])]

    def token_bucket() -> Callable[[str], object]:
        limiter = TokenBucket(rate=0.01, capacity=1000, store=MemoryStore(max_keys=2 * sizes[-1]))
        return limiter.try_acquire

    def sliding() -> Callable[[str], object]:
        limiter = SlidingWindow(
            limit=1000, window=3600.0, store=MemoryStore(max_keys=2 * sizes[-1])
        )
        return limiter.try_acquire

    def limits_fixed() -> Callable[[str], object]:
        limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
        return lambda key: limiter.hit(hourly, key)

    def limits_moving() -> Callable[[str], object]:
        limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        return lambda key: limiter.hit(hourly, key)

    makers: dict[str, tuple[Callable[[], Callable[[str], object]], list[int]]] = {
        "resilient TokenBucket": (token_bucket, sizes),
        "resilient SlidingWindow": (sliding, sizes),
        "limits FixedWindowRateLimiter": (limits_fixed, peer_sizes),
    }
    if not SETTINGS.quick:
        makers["limits MovingWindowRateLimiter"] = (limits_moving, peer_sizes)
    for name, (make, checkpoints) in makers.items():
        acquire = make()
        ys = bytes_per_key_curve(acquire, keys, checkpoints)
        del acquire
        report.curve(
            "limiter memory per key", name, checkpoints, ys, xlabel="keys", unit="bytes per key"
        )


def run(report: Report) -> None:
    for part in (_thread_scaling, _task_scaling, _memory):
        started = time.perf_counter()
        part(report)
        print(f"  ({part.__name__.strip('_')}: {time.perf_counter() - started:.1f} s)", flush=True)
