"""RedisStore against a real redis-server: same formulas, exact under concurrency, outages."""

from __future__ import annotations

import enum
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient import Decision, SlidingWindow, StoreUnavailable, TokenBucket
from resilient._rate_limit import TICKS_PER_SECOND, gcra, sliding_counter, sliding_log
from resilient.instrumentation import StoreError, subscribe, unsubscribe
from resilient.stores import RedisStore

from .._concurrency import admitted_by_tasks, admitted_by_threads
from .._redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
FRESH = itertools.count()

# Redis's clock is epoch microseconds: pin times of that size so the doubles in Lua are tested.
EPOCH_TICKS = 1_700_000_000 * TICKS_PER_SECOND

pinned_schedules = st.lists(
    st.tuples(st.integers(0, 400_000), st.integers(1, 5)), min_size=1, max_size=30
)


def seconds(ticks: int) -> float:
    return ticks / TICKS_PER_SECOND


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.sampled_from([0.5, 3.0, 7.0, 10.0, 250.0, 1000.0]),
    capacity=st.integers(1, 6),
    schedule=pinned_schedules,
)
def test_redis_token_bucket_computes_gcra(
    redis_client: Any, rate: float, capacity: int, schedule: list[tuple[int, int]]
) -> None:
    """The script's formulas, with the time pinned (ARGV now, a test-only hook)."""
    limiter = TokenBucket(rate, capacity, store=RedisStore(redis_client))
    interval = round(TICKS_PER_SECOND / rate)
    key = f"k{next(FRESH)}"
    tat: int | None = None
    now = EPOCH_TICKS + next(FRESH) * 10**9
    for advance, cost in schedule:
        now += advance
        cost = min(cost, capacity)
        allowed, remaining, retry_after, reset_after, tat = gcra(
            tat, now, interval, interval * capacity, cost
        )
        expected = Decision(
            allowed, capacity, remaining, seconds(retry_after), seconds(reset_after)
        )
        assert limiter._backend.decide(key, cost, now) == expected  # type: ignore[call-arg]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    window=st.sampled_from([0.25, 1.0, 1.5, 3600.0]),
    limit=st.integers(1, 6),
    precise=st.booleans(),
    schedule=pinned_schedules,
)
def test_redis_sliding_window_computes_the_reference(
    redis_client: Any, window: float, limit: int, precise: bool, schedule: list[tuple[int, int]]
) -> None:
    limiter = SlidingWindow(limit, window, precise=precise, store=RedisStore(redis_client))
    ticks = round(window * TICKS_PER_SECOND)
    key = f"k{next(FRESH)}"
    state: Any = [] if precise else None
    now = EPOCH_TICKS + next(FRESH) * 10**10
    for advance, cost in schedule:
        now += advance
        cost = min(cost, limit)
        algorithm = sliding_log if precise else sliding_counter
        allowed, remaining, retry_after, reset_after, new_state = algorithm(
            state, now, ticks, limit, cost
        )
        if allowed:
            state = new_state
        expected = Decision(allowed, limit, remaining, seconds(retry_after), seconds(reset_after))
        assert limiter._backend.decide(key, cost, now) == expected  # type: ignore[call-arg]


def test_decisions_use_redis_time_and_every_key_gets_a_ttl(redis_client: Any) -> None:
    """Unpinned: the script reads TIME. Durations that do not depend on `now` are compared."""
    store = RedisStore(redis_client)
    bucket = TokenBucket(rate=10.0, capacity=5, store=store, name="api")
    assert bucket.try_acquire("user:1", cost=2) == Decision(True, 5, 3, 0.0, 0.2)
    counter = SlidingWindow(limit=5, window=60.0, store=store)
    log = SlidingWindow(limit=5, window=60.0, precise=True, store=store, name="log")
    assert counter.try_acquire("user:1").allowed
    assert log.try_acquire("user:1") == Decision(True, 5, 4, 0.0, 60.0)
    keys = sorted(k.decode() for k in redis_client.keys("*"))
    assert keys == [
        "resilient:{api:user:1}:gcra",
        "resilient:{log:user:1}:sliding_log",
        "resilient:{sliding_window:user:1}:sliding_counter",
    ]
    ttls = {key: redis_client.pttl(key) for key in keys}
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    assert ttls["resilient:{api:user:1}:gcra"] <= 200 + 1000  # the TAT's lifetime + slack
    # The counter slot is Redis's own: now // window of the server's epoch time.
    slot = int(redis_client.hget("resilient:{sliding_window:user:1}:sliding_counter", "s"))
    server_seconds, _ = redis_client.time()
    assert slot == server_seconds // 60 or slot == server_seconds // 60 - 1


@pytest.mark.parametrize(
    "make",
    [
        lambda store: TokenBucket(rate=1e-3, capacity=100, store=store),
        lambda store: SlidingWindow(limit=100, window=3600.0, store=store),
        lambda store: SlidingWindow(limit=100, window=3600.0, precise=True, store=store),
    ],
    ids=["token_bucket", "sliding_counter", "sliding_log"],
)
def test_threads_never_over_admit_through_redis(redis_client: Any, make: Any) -> None:
    assert admitted_by_threads(make(RedisStore(redis_client))) == 100


@pytest.mark.parametrize("precise", [None, False, True])
async def test_tasks_never_over_admit_with_a_sync_client_in_threads(
    redis_client: Any, precise: bool | None
) -> None:
    """The path for trio (and asyncio with a sync client): calls run in worker threads."""
    store = RedisStore(redis_client)
    limiter = (
        TokenBucket(rate=1e-3, capacity=50, store=store)
        if precise is None
        else SlidingWindow(limit=50, window=3600.0, precise=precise, store=store)
    )
    assert await admitted_by_tasks(limiter) == 50


@pytest.mark.parametrize("precise", [None, False, True])
async def test_tasks_never_over_admit_with_an_async_client(
    async_redis_client: Any, precise: bool | None
) -> None:
    store = RedisStore(async_redis_client)
    limiter = (
        TokenBucket(rate=1e-3, capacity=50, store=store)
        if precise is None
        else SlidingWindow(limit=50, window=3600.0, precise=precise, store=store)
    )
    assert await admitted_by_tasks(limiter) == 50


async def test_from_url_async_client_queues_500_tasks_instead_of_failing_open(
    redis_url: str, anyio_backend: str
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    store = RedisStore.from_url(redis_url, asynchronous=True, socket_timeout=2.0)
    limiter = TokenBucket(rate=1e-3, capacity=50, store=store)
    try:
        assert await admitted_by_tasks(limiter) == 50
    finally:
        await store.client.aclose()


WORKER = """
import sys
import redis
from resilient import SlidingWindow, TokenBucket
from resilient.stores import RedisStore

url, kind = sys.argv[1], sys.argv[2]
store = RedisStore(redis.Redis.from_url(url, socket_timeout=5.0))
if kind == "token_bucket":
    limiter = TokenBucket(rate=1e-3, capacity=120, store=store)
else:
    limiter = SlidingWindow(limit=120, window=3600.0, precise=kind == "log", store=store)
print(sum(limiter.try_acquire("shared").allowed for _ in range(300)))
"""


@pytest.mark.parametrize("kind", ["token_bucket", "counter", "log"])
def test_four_processes_admit_exactly_the_limit_together(redis_url: str, kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, kind],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(4)
    ]
    counts = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            counts.append(int(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert sum(counts) == 120
    assert all(count < 300 for count in counts)


# ---------------------------------------------------------------------------------------------
# Outages: kill the server, or freeze it, mid-run.
# ---------------------------------------------------------------------------------------------

SOCKET_TIMEOUT = 0.3


@pytest.fixture
def events() -> Any:
    seen: list[object] = []
    subscribe(seen.append)
    yield seen
    unsubscribe(seen.append)


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result = fn()
    except StoreUnavailable as error:
        result = error
    return result, time.monotonic() - started


@pytest.mark.parametrize("on_error", ["allow", "deny", "raise"])
def test_redis_killed_mid_run_follows_on_error_then_recovers(
    redis_server: RedisServer, redis_url: str, on_error: str, events: list[object]
) -> None:
    store = RedisStore.from_url(
        redis_url, socket_timeout=SOCKET_TIMEOUT, on_error=on_error, error_retry_after=2.0
    )
    limiter = TokenBucket(rate=1e-3, capacity=3, store=store, name="api")
    assert limiter.try_acquire("k") == Decision(True, 3, 2, 0.0, 1000.0)
    redis_server.stop()
    try:
        for _ in range(3):
            result, elapsed = _timed(lambda: limiter.try_acquire("k"))
            assert elapsed < SOCKET_TIMEOUT + 0.5
            if on_error == "allow":
                assert result == Decision(True, 3, 2, 0.0, 0.0)
            elif on_error == "deny":
                assert result == Decision(False, 3, 0, 2.0, 2.0)
            else:
                assert isinstance(result, StoreUnavailable)
                assert isinstance(result.__cause__, redis.exceptions.ConnectionError)
        errors = [e for e in events if isinstance(e, StoreError)]
        assert len(errors) == 3
        assert all(
            (e.policy, e.name, e.operation, e.action)
            == ("rate_limiter", "api", "rate_limit", on_error)
            for e in errors
        )
    finally:
        redis_server.start()
    # The same limiter, the same store, the same client: counters are gone, decisions are back.
    assert limiter.try_acquire("k") == Decision(True, 3, 2, 0.0, 1000.0)
    second = limiter.try_acquire("k")
    assert (second.allowed, second.remaining) == (True, 1)
    assert 1999.0 < second.reset_after <= 2000.0


def test_frozen_redis_costs_at_most_the_socket_timeout(
    redis_server: RedisServer, redis_url: str, events: list[object]
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT, on_error="deny")
    limiter = SlidingWindow(limit=5, window=60.0, store=store)
    assert limiter.try_acquire().allowed
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        decision, elapsed = _timed(limiter.try_acquire)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert decision == Decision(False, 5, 0, 1.0, 1.0)
    assert SOCKET_TIMEOUT * 0.9 <= elapsed < SOCKET_TIMEOUT + 0.5
    assert isinstance(events[0], StoreError)
    # The state from before the freeze is kept. The timed-out call reached Redis and runs once
    # the server wakes up, so it may have counted (2 left) or not (3 left).
    assert limiter.try_acquire().remaining in (2, 3)


async def test_async_client_outage_raises_store_unavailable_then_recovers(
    redis_server: RedisServer, redis_url: str, anyio_backend: str
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("redis.asyncio runs on asyncio only")
    store = RedisStore.from_url(
        redis_url, asynchronous=True, socket_timeout=SOCKET_TIMEOUT, on_error="raise"
    )
    limiter = TokenBucket(rate=1e-3, capacity=3, store=store)
    assert (await limiter.atry_acquire()).remaining == 2
    redis_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await limiter.atry_acquire()
        assert time.monotonic() - started < SOCKET_TIMEOUT + 0.5
    finally:
        redis_server.start()
    assert (await limiter.atry_acquire()).remaining == 2
    await store.client.aclose()


async def test_sync_client_outage_in_worker_threads_fails_open(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT)
    limiter = TokenBucket(rate=1e-3, capacity=3, store=store)
    redis_server.stop()
    try:
        assert await limiter.atry_acquire() == Decision(True, 3, 2, 0.0, 0.0)
    finally:
        redis_server.start()
    assert (await limiter.atry_acquire()).reset_after == 1000.0


def test_an_int_subclass_cost_is_sent_as_its_number(redis_client: Any) -> None:
    class Cost(enum.IntEnum):
        BIG = 2

    store = RedisStore(redis_client, on_error="raise")
    limiter = TokenBucket(rate=1e-3, capacity=3, store=store)
    assert limiter.try_acquire("k", cost=Cost.BIG).remaining == 1
    assert not limiter.try_acquire("k", cost=Cost.BIG).allowed


def test_scripts_are_reloaded_after_noscript(redis_client: Any) -> None:
    limiter = TokenBucket(rate=1e-3, capacity=3, store=RedisStore(redis_client))
    assert limiter.try_acquire().remaining == 2
    redis_client.script_flush()
    assert limiter.try_acquire().remaining == 1
    assert redis_client.script_exists(limiter._backend._script.sha) == [True]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Client pairings and arguments.
# ---------------------------------------------------------------------------------------------


async def test_async_client_cannot_serve_sync_calls(async_redis_client: Any) -> None:
    limiter = TokenBucket(rate=1.0, capacity=1, store=RedisStore(async_redis_client))
    with pytest.raises(TypeError, match="async calls only"):
        limiter.try_acquire()


async def test_async_client_under_trio_is_a_type_error(anyio_backend: str) -> None:
    if anyio_backend != "trio":
        pytest.skip("the pairing only fails under trio")
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=1)  # never connected
    limiter = TokenBucket(rate=1.0, capacity=1, store=RedisStore(client))
    with pytest.raises(TypeError, match="asyncio only"):
        await limiter.atry_acquire()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"client": object()}, TypeError, "client must be a redis.Redis"),
        ({"on_error": "ignore"}, ValueError, "on_error must be"),
        ({"prefix": ""}, ValueError, "prefix must be non-empty"),
        ({"prefix": "a{b}"}, ValueError, "prefix must be non-empty and without braces"),
        ({"prefix": 3}, TypeError, "prefix must be a str"),
        ({"error_retry_after": 0}, ValueError, "error_retry_after must be > 0"),
    ],
)
def test_bad_store_arguments_name_the_argument(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    options: dict[str, Any] = {"client": redis.Redis(host="127.0.0.1", port=1), **kwargs}
    with pytest.raises(error, match=message):
        RedisStore(**options)


def test_keys_of_one_decision_share_a_cluster_hash_tag(redis_client: Any) -> None:
    store = RedisStore(redis_client, prefix="app")
    key = store._key("payments", "user:42", "state")
    assert key == "app:{payments:user:42}:state"
    tag = key[key.index("{") + 1 : key.index("}")]
    assert tag == "payments:user:42"
    assert store._key("payments", "user:42", "other").startswith("app:{" + tag + "}")


def test_names_and_keys_with_colons_never_share_a_redis_key(redis_client: Any) -> None:
    store = RedisStore(redis_client)
    first = TokenBucket(rate=1e-3, capacity=1, store=store, name="api")
    second = TokenBucket(rate=1e-3, capacity=1, store=store, name="api:user")
    assert first.try_acquire("user:42").allowed
    assert second.try_acquire("42").allowed
    assert sorted(redis_client.keys("resilient:*")) == [
        b"resilient:{api:user:42}:gcra",
        b"resilient:{api\\:user:42}:gcra",
    ]


# Clock readings (seconds) pinned as the scripts' time. The scripts read Redis's TIME, epoch
# microseconds, and compute in Lua doubles, exact for integers up to 2**53 microseconds (about
# 285 years: Redis's clock stays below it until 2255). A reading of 1e12 s (1e18 us) is past it
# and is not supported by the scripts (its sums are off by up to 64 us); the memory store's
# limiters, which compute in Python ints, are exact there too.
READINGS = [0.0, 123.456, 8_300_356.93, 1e9, 1_700_000_000.123456]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.sampled_from(READINGS),
    kind=st.sampled_from(["bucket", "counter", "log"]),
    schedule=pinned_schedules,
)
def test_redis_decisions_match_the_reference_at_any_clock_reading(
    redis_client: Any, start: float, kind: str, schedule: list[tuple[int, int]]
) -> None:
    store = RedisStore(redis_client)
    if kind == "bucket":
        limiter: Any = TokenBucket(rate=3.0, capacity=2, store=store)
        interval = round(TICKS_PER_SECOND / 3.0)
    else:
        limiter = SlidingWindow(limit=2, window=0.7, precise=kind == "log", store=store)
    ticks = round(0.7 * TICKS_PER_SECOND)
    key = f"k{next(FRESH)}"
    state: Any = [] if kind == "log" else None
    now = round(start * TICKS_PER_SECOND)
    for advance, cost in schedule:
        now += advance
        cost = min(cost, 2)
        if kind == "bucket":
            allowed, remaining, retry_after, reset_after, state = gcra(
                state, now, interval, interval * 2, cost
            )
        else:
            algorithm = sliding_log if kind == "log" else sliding_counter
            allowed, remaining, retry_after, reset_after, new_state = algorithm(
                state, now, ticks, 2, cost
            )
            if allowed:
                state = new_state
        expected = Decision(allowed, 2, remaining, seconds(retry_after), seconds(reset_after))
        assert limiter._backend.decide(key, cost, now) == expected, (start, now)
