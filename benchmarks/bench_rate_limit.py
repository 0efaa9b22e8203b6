"""Rate limiters: one decision in memory, and one decision in Redis against a PING round trip.

Memory, every candidate deciding for the key ``'k'`` through one lambda (the same call cost for
all), measured in turns:

- "allowed": quotas that do not run out during the measurement (10^9 per second), so every
  call is granted: resilient's ``TokenBucket`` (the C decision when the extension is built, as
  users get it; "pure Python" rows show the fallback) and ``SlidingWindow`` against limits'
  ``FixedWindowRateLimiter`` and ``SlidingWindowCounterRateLimiter`` (``MemoryStorage``) and
  pyrate-limiter's token bucket (``limiter_factory.create_token_bucket_limiter``, a GCRA like
  ours, ``try_acquire(key, blocking=False)``). resilient's token bucket refills 10^6 per second
  (its maximum rate) from a capacity of 10^9.
- "at quota": the same quota for all, 1,000 per second, hammered, so most calls are refused;
  limits' ``MovingWindowRateLimiter`` is measured here only, since with an unbounded quota its
  log of timestamps grows with every call.
- asyncio: ``TokenBucket.atry_acquire`` against aiolimiter's ``AsyncLimiter.acquire``.

Redis: a redis-server on a free port on 127.0.0.1 is started (and stopped) here. Every Redis row
uses the same kind of client on the same connection; PING is the floor (one round trip). The
rows take turns call by call and each reports its median. The "EVALSHA ... alone" row sends the
token bucket's script with the decision's own key and arguments straight through the client:
the floor of any script-based decision, the round trip plus the script's run time in Redis. The
decision's distance to it is our Python; its distance to PING is Redis's work.

Targets: the memory token bucket at most 0.2x limits' moving window and 0.5x limits' fixed
window; the sliding window at most 0.5x limits' sliding window counter; a Redis decision at most
1.1x a PING.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ._harness import Report, compare, compare_async, compare_paired

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
HUGE = 10**9


def _pure_python(make: Callable[[], T]) -> T:
    """``make()`` with the C token bucket switched off while it binds its store."""
    from resilient.stores import _memory

    native = _memory._speedups
    _memory._speedups = None
    try:
        return make()
    finally:
        _memory._speedups = native


def _pyrate(rate: int) -> Callable[[], object]:
    from pyrate_limiter import Duration, limiter_factory

    limiter = limiter_factory.create_token_bucket_limiter(
        rate_per_duration=rate, duration=Duration.SECOND
    )
    return lambda: limiter.try_acquire("k", blocking=False)


def _memory(report: Report) -> None:
    from limits import RateLimitItemPerSecond, storage, strategies

    from resilient import SlidingWindow, TokenBucket
    from resilient.stores import _memory

    version = "C" if _memory._speedups is not None else "pure Python: the C extension is not built"
    print(f"  memory token bucket: {version}", flush=True)
    report.notes.append(f"The memory token bucket rows ran the {version} decision.")

    bucket = TokenBucket(rate=1e6, capacity=HUGE)
    plain = _pure_python(lambda: TokenBucket(rate=1e6, capacity=HUGE))
    window = SlidingWindow(limit=HUGE, window=1.0)
    huge = RateLimitItemPerSecond(HUGE)
    # One MemoryStorage for every limits strategy, as an application has: each MemoryStorage
    # runs its own expiry timer thread, and several of them would slow every row down.
    memory = storage.MemoryStorage()
    fixed = strategies.FixedWindowRateLimiter(memory)
    counter = strategies.SlidingWindowCounterRateLimiter(memory)
    times = compare(
        {
            "resilient TokenBucket.try_acquire('k')": lambda: bucket.try_acquire("k"),
            "resilient TokenBucket.try_acquire('k') (pure Python)": lambda: plain.try_acquire("k"),
            "resilient SlidingWindow.try_acquire('k')": lambda: window.try_acquire("k"),
            "limits FixedWindowRateLimiter.hit": lambda: fixed.hit(huge, "f"),
            "limits SlidingWindowCounterRateLimiter.hit": lambda: counter.hit(huge, "s"),
            "pyrate-limiter token bucket try_acquire": _pyrate(HUGE),
        }
    )
    group = "rate limiter decision, memory (allowed)"
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name.startswith("limits Fixed"))
    report.target(
        "memory token bucket vs limits' fixed window (allowed)",
        times["resilient TokenBucket.try_acquire('k')"],
        times["limits FixedWindowRateLimiter.hit"],
        at_most=0.5,
        peer="limits fixed window",
    )
    report.target(
        "memory sliding window vs limits' sliding window counter (allowed)",
        times["resilient SlidingWindow.try_acquire('k')"],
        times["limits SlidingWindowCounterRateLimiter.hit"],
        at_most=0.5,
        peer="limits sliding counter",
    )
    report.target(
        "memory token bucket vs pyrate-limiter's token bucket (allowed)",
        times["resilient TokenBucket.try_acquire('k')"],
        times["pyrate-limiter token bucket try_acquire"],
        at_most=1.0,
        peer="pyrate-limiter",
        headline=False,
    )

    per_second = RateLimitItemPerSecond(1000)
    at_quota = TokenBucket(rate=1000.0, capacity=1000)
    plain_quota = _pure_python(lambda: TokenBucket(rate=1000.0, capacity=1000))
    counter_quota = SlidingWindow(limit=1000, window=1.0)
    log_quota = SlidingWindow(limit=1000, window=1.0, precise=True)
    moving = strategies.MovingWindowRateLimiter(memory)
    fixed_quota = strategies.FixedWindowRateLimiter(memory)
    counter_limits = strategies.SlidingWindowCounterRateLimiter(memory)
    times = compare(
        {
            "resilient TokenBucket.try_acquire('k')": lambda: at_quota.try_acquire("k"),
            "resilient TokenBucket.try_acquire('k') (pure Python)": (
                lambda: plain_quota.try_acquire("k")
            ),
            "resilient SlidingWindow.try_acquire('k')": lambda: counter_quota.try_acquire("k"),
            "resilient SlidingWindow(precise=True).try_acquire('k')": (
                lambda: log_quota.try_acquire("k")
            ),
            "limits MovingWindowRateLimiter.hit": lambda: moving.hit(per_second, "qm"),
            "limits FixedWindowRateLimiter.hit": lambda: fixed_quota.hit(per_second, "qf"),
            "limits SlidingWindowCounterRateLimiter.hit": (
                lambda: counter_limits.hit(per_second, "qs")
            ),
            "pyrate-limiter token bucket try_acquire": _pyrate(1000),
        }
    )
    group = "rate limiter decision, memory (at quota: 1,000/s)"
    for name, timing in times.items():
        report.add(group, name, timing, baseline=name.startswith("limits Moving"))
    report.target(
        "memory token bucket vs limits' moving window (at quota)",
        times["resilient TokenBucket.try_acquire('k')"],
        times["limits MovingWindowRateLimiter.hit"],
        at_most=0.2,
        peer="limits moving window",
    )

    import aiolimiter

    leaky: list[aiolimiter.AsyncLimiter] = []

    async def their_acquire() -> None:
        if not leaky:  # bound to the running loop
            leaky.append(aiolimiter.AsyncLimiter(max_rate=1e12, time_period=1))
        await leaky[0].acquire()

    async def ours_async() -> object:
        return await bucket.atry_acquire("k")

    atimes = compare_async(
        {
            "resilient TokenBucket.atry_acquire('k')": ours_async,
            "aiolimiter AsyncLimiter.acquire()": their_acquire,
        }
    )
    group = "rate limiter decision, memory (allowed, asyncio)"
    for name, timing in atimes.items():
        report.add(group, name, timing, baseline=name.startswith("aiolimiter"))
    report.target(
        "memory token bucket (asyncio) vs aiolimiter",
        atimes["resilient TokenBucket.atry_acquire('k')"],
        atimes["aiolimiter AsyncLimiter.acquire()"],
        at_most=1.0,
        strict=True,
        peer="aiolimiter",
        headline=False,
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
    from resilient.stores._redis import _RedisRateLimiter

    with RedisServer(binary) as server:
        client = redis.Redis.from_url(server.url)
        store = RedisStore(client)
        bucket = TokenBucket(rate=1e6, capacity=HUGE, store=store, name="bench")
        counter = SlidingWindow(limit=HUGE, window=60.0, store=store, name="bench")
        log = SlidingWindow(limit=1000, window=1.0, precise=True, store=store, name="bench")
        limits_storage = storage.RedisStorage(server.url)
        moving = strategies.MovingWindowRateLimiter(limits_storage)
        fixed = strategies.FixedWindowRateLimiter(limits_storage)
        sliding = strategies.SlidingWindowCounterRateLimiter(limits_storage)
        big = RateLimitItemPerSecond(HUGE)
        per_second = RateLimitItemPerSecond(1000)
        execute = client.execute_command
        # The decision's own EVALSHA: its script, key and arguments (see the module docstring).
        backend = bucket._backend
        assert isinstance(backend, _RedisRateLimiter)
        script_call = (
            "EVALSHA",
            backend._script.sha,
            1,
            backend._key_head + "k" + backend._key_tail,
            backend._first,
            backend._second,
            1,
        )
        alone = "EVALSHA of the token bucket script alone (the decision's key and arguments)"
        rows = compare_paired(
            {
                "PING (one round trip)": lambda: execute("PING"),
                "resilient TokenBucket.try_acquire('k')": lambda: bucket.try_acquire("k"),
                alone: lambda: execute(*script_call),
                "resilient SlidingWindow.try_acquire('k')": lambda: counter.try_acquire("k"),
                "resilient SlidingWindow(precise=True).try_acquire('k') (at quota)": (
                    lambda: log.try_acquire("k")
                ),
                "limits FixedWindowRateLimiter.hit": lambda: fixed.hit(big, "f"),
                "limits MovingWindowRateLimiter.hit": lambda: moving.hit(big, "k"),
                "limits MovingWindowRateLimiter.hit (at quota)": lambda: moving.hit(
                    per_second, "q"
                ),
                "limits SlidingWindowCounterRateLimiter.hit": lambda: sliding.hit(big, "s"),
            }
        )
        group = "rate limiter decision, Redis on 127.0.0.1"
        for name, timing in rows.items():
            report.add(group, name, timing, baseline=name.startswith("PING"))
        ping = rows["PING (one round trip)"]
        report.target(
            "Redis token bucket decision vs a PING round trip",
            rows["resilient TokenBucket.try_acquire('k')"],
            ping,
            at_most=1.1,
            peer="PING",
            detail=(
                f"the script alone: {rows[alone].median / ping.median:.2f}x PING; "
                "limits moving window: "
                f"{rows['limits MovingWindowRateLimiter.hit'].median / ping.median:.2f}x PING"
            ),
        )
        client.close()


def run(report: Report) -> None:
    _memory(report)
    _redis(report)
