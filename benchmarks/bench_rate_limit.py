"""Rate limiters: one decision in memory, and one decision in Redis against a PING round trip.

Memory: resilient's limiters against ``limits`` (moving window, fixed window) and ``aiolimiter``.
The token bucket rows use the C decision (``resilient._speedups``) when it is built, as users
get it; the rows marked "pure Python" show the fallback used where it is not.
The "allowed" rows use quotas that do not run out during the measurement, so every call is
granted; the "at quota" rows give resilient and ``limits`` the same quota (1,000 per second),
so most calls are refused, like a client hammering its limit.

Redis: a redis-server on a free port on 127.0.0.1 is started (and stopped) here. Every Redis row
uses the same kind of client on the same connection; PING is the floor (one round trip).
Round trips on localhost vary widely from call to call, so the rows take turns call by call
and each reports its median (``measure_paired``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ._harness import Report, measure, measure_async, measure_paired

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _pure_python(make: Callable[[], T]) -> T:
    """``make()`` with the C token bucket switched off while it binds its store."""
    from resilient.stores import _memory

    native = _memory._speedups
    _memory._speedups = None
    try:
        return make()
    finally:
        _memory._speedups = native


def _memory(report: Report) -> None:
    import aiolimiter
    from limits import RateLimitItemPerSecond, storage, strategies

    from resilient import SlidingWindow, TokenBucket
    from resilient.stores import _memory

    version = "C" if _memory._speedups is not None else "pure Python: the C extension is not built"
    print(f"  memory token bucket: {version}", flush=True)
    group = "rate limiter decision, memory (allowed)"
    bucket = TokenBucket(rate=1e6, capacity=10**9)
    ours = report.add(group, "resilient TokenBucket.try_acquire()", measure(bucket.try_acquire))
    plain = _pure_python(lambda: TokenBucket(rate=1e6, capacity=10**9))
    report.add(
        group, "resilient TokenBucket.try_acquire() (pure Python)", measure(plain.try_acquire)
    )
    keyed = TokenBucket(rate=1e6, capacity=10**9)
    report.add(
        group,
        "resilient TokenBucket.try_acquire('user:42')",
        measure(lambda: keyed.try_acquire("user:42")),
        note="includes a lambda call",
    )
    counter = SlidingWindow(limit=10**9, window=1.0)
    report.add(group, "resilient SlidingWindow.try_acquire()", measure(counter.try_acquire))
    log = SlidingWindow(limit=10**6, window=0.5, precise=True)
    report.add(
        group, "resilient SlidingWindow(precise=True).try_acquire()", measure(log.try_acquire)
    )
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    huge = RateLimitItemPerSecond(10**9)
    report.add(group, "limits FixedWindowRateLimiter.hit", measure(lambda: fixed.hit(huge, "k")))

    ours_async = measure_async(bucket.atry_acquire, backend="asyncio", number=200_000)
    report.add(group, "resilient TokenBucket.atry_acquire() (asyncio)", ours_async)
    # One event loop for all its timed loops (number= given): aiolimiter binds to a loop.
    leaky = aiolimiter.AsyncLimiter(max_rate=1e12, time_period=1)
    theirs_async = measure_async(leaky.acquire, backend="asyncio", number=200_000)
    report.add(group, "aiolimiter AsyncLimiter.acquire() (asyncio)", theirs_async)

    quota = "rate limiter decision, memory (at quota: 1,000/s)"
    at_quota = TokenBucket(rate=1000.0, capacity=1000)
    ours_quota = report.add(
        quota,
        "resilient TokenBucket.try_acquire('k')",
        measure(lambda: at_quota.try_acquire("k")),
        baseline=True,
    )
    plain_quota = _pure_python(lambda: TokenBucket(rate=1000.0, capacity=1000))
    report.add(
        quota,
        "resilient TokenBucket.try_acquire('k') (pure Python)",
        measure(lambda: plain_quota.try_acquire("k")),
    )
    moving = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    per_second = RateLimitItemPerSecond(1000)
    theirs_moving = report.add(
        quota, "limits MovingWindowRateLimiter.hit", measure(lambda: moving.hit(per_second, "k"))
    )
    window_quota = SlidingWindow(limit=1000, window=1.0, precise=True)
    report.add(
        quota,
        "resilient SlidingWindow(precise=True).try_acquire('k')",
        measure(lambda: window_quota.try_acquire("k")),
    )

    report.check(
        "memory TokenBucket.try_acquire() <= 0.5 us", ours <= 0.5e-6, f"{ours * 1e9:.0f} ns"
    )
    report.check(
        "memory TokenBucket >= 5x faster than limits' moving window (same quota)",
        theirs_moving >= 5 * ours_quota,
        f"{theirs_moving / ours_quota:.1f}x",
    )
    report.check(
        "memory TokenBucket faster than aiolimiter (async vs async, and sync)",
        ours_async < theirs_async and ours < theirs_async,
        f"atry_acquire {ours_async * 1e9:.0f} ns, try_acquire {ours * 1e9:.0f} ns, "
        f"aiolimiter {theirs_async * 1e9:.0f} ns",
    )


def _redis(report: Report) -> None:
    sys.path.insert(0, str(ROOT))
    from tests._redis_server import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        print("  redis-server not found: Redis rows skipped", flush=True)
        return
    import redis
    from limits import RateLimitItemPerSecond, storage, strategies

    from resilient import SlidingWindow, TokenBucket
    from resilient.stores import RedisStore

    with RedisServer(binary) as server:
        client = redis.Redis.from_url(server.url)
        store = RedisStore(client)
        bucket = TokenBucket(rate=1e6, capacity=10**9, store=store, name="bench")
        counter = SlidingWindow(limit=10**9, window=60.0, store=store, name="bench")
        log = SlidingWindow(limit=1000, window=1.0, precise=True, store=store, name="bench")
        limits_storage = storage.RedisStorage(server.url)
        moving = strategies.MovingWindowRateLimiter(limits_storage)
        sliding = strategies.SlidingWindowCounterRateLimiter(limits_storage)
        big = RateLimitItemPerSecond(10**9)
        per_second = RateLimitItemPerSecond(1000)
        execute = client.execute_command
        rows = measure_paired(
            {
                "PING (one round trip)": lambda: execute("PING"),
                "resilient TokenBucket.try_acquire('k')": lambda: bucket.try_acquire("k"),
                "resilient SlidingWindow.try_acquire('k')": lambda: counter.try_acquire("k"),
                "resilient SlidingWindow(precise=True).try_acquire('k') (at quota)": (
                    lambda: log.try_acquire("k")
                ),
                "limits MovingWindowRateLimiter.hit": lambda: moving.hit(big, "k"),
                "limits MovingWindowRateLimiter.hit (at quota)": lambda: moving.hit(
                    per_second, "q"
                ),
                "limits SlidingWindowCounterRateLimiter.hit": lambda: sliding.hit(big, "s"),
            }
        )
        group = "rate limiter decision, Redis on 127.0.0.1"
        for name, seconds in rows.items():
            report.add(group, name, seconds, baseline=name.startswith("PING"))
        ping = rows["PING (one round trip)"]
        ours = rows["resilient TokenBucket.try_acquire('k')"]
        theirs = rows["limits MovingWindowRateLimiter.hit"]
        report.check(
            "Redis TokenBucket decision <= 1.1x a PING round trip",
            ours <= 1.1 * ping,
            f"{ours / ping:.2f}x PING (limits moving window: {theirs / ping:.2f}x)",
        )
        client.close()


def run(report: Report) -> None:
    _memory(report)
    _redis(report)
