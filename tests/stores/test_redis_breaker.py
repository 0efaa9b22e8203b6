"""CircuitBreaker(store=RedisStore(...)) against a real redis-server.

The shared breaker must behave exactly like the memory breaker (checked step by step against
it on random schedules, with the script's clock pinned to the fake clock), share its state
between breaker objects and processes, keep a TTL on its key, and survive Redis outages as the
store's ``on_error`` says.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient import (
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    DeadlineExceeded,
    Pipeline,
    StoreUnavailable,
    TimeWindow,
    timeout,
)
from resilient.instrumentation import CircuitStateChanged, StoreError, subscribe, unsubscribe
from resilient.stores import MemoryStore, RedisStore
from resilient.testing import FakeClock

from .._redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
FRESH = itertools.count()
EPOCH_MS = 1_700_000_000_000  # a multiple of every bucket width used below
SOCKET_TIMEOUT = 0.3


def fresh_name() -> str:
    return f"breaker-{next(FRESH)}"


def pin(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Run the breaker's script on the fake clock instead of Redis TIME."""
    breaker._backend.pin = lambda: EPOCH_MS + round(clock.monotonic() * 1000)  # type: ignore[attr-defined]


def pinned_breaker(
    store: RedisStore, clock: FakeClock, open_for: float, **options: Any
) -> CircuitBreaker:
    """A breaker on ``store`` that opens on one failure, its script's clock pinned to ``clock``."""
    breaker = CircuitBreaker(
        fresh_name(), consecutive_failures=1, open_for=open_for, clock=clock, store=store, **options
    )
    pin(breaker, clock)
    return breaker


def state_key(name: str, prefix: str = "resilient") -> str:
    return f"{prefix}:{{circuit_breaker:{name}}}:state"


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


@pytest.fixture
def events() -> Iterator[list[object]]:
    seen: list[object] = []
    subscribe(seen.append)
    yield seen
    unsubscribe(seen.append)


# ---------------------------------------------------------------------------------------------
# The same state machine as the memory breaker.
# ---------------------------------------------------------------------------------------------

breaker_settings = st.fixed_dictionaries(
    {
        "window": st.one_of(
            st.builds(CountWindow, st.integers(1, 5)),
            st.builds(TimeWindow, st.sampled_from([2.0, 4.0]), st.sampled_from([1, 2, 4])),
        ),
        "minimum_calls": st.integers(1, 4),
        "failure_rate": st.sampled_from([0.5, 1.0, None]),
        "slow_call_rate": st.sampled_from([None, 0.5]),
        "consecutive_failures": st.sampled_from([None, 2]),
        "open_for": st.sampled_from(["seconds", "backoff"]),
        "half_open_calls": st.integers(1, 2),
    }
).filter(
    lambda s: (
        s["failure_rate"] is not None
        or s["slow_call_rate"] is not None
        or s["consecutive_failures"] is not None
    )
)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.sampled_from(["ok", "fail", "slow", "slow_fail", "ignored"])),
        st.tuples(st.just("advance"), st.sampled_from([0.25, 0.5, 1.0, 2.5, 5.0, 9.0])),
        st.tuples(st.just("operator"), st.sampled_from(["force_open", "disable", "reset"])),
        st.tuples(st.just("look"), st.sampled_from(["state", "metrics"])),
    ),
    max_size=40,
)


def _run_call(breaker: CircuitBreaker, clock: FakeClock, kind: str) -> object:
    def work() -> str:
        if kind.startswith("slow"):
            clock.advance(1.0)
        if kind.endswith("fail"):
            raise Boom
        if kind == "ignored":
            raise Ignored
        return "ok"

    try:
        return breaker.call(work)
    except CircuitOpenError as error:
        return ("rejected", round(error.retry_after, 3))
    except (Boom, Ignored) as error:
        return type(error).__name__


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(options=breaker_settings, schedule=steps)
def test_redis_breaker_moves_exactly_like_the_memory_breaker(
    redis_client: Any, options: dict[str, Any], schedule: list[tuple[str, Any]]
) -> None:
    clock = FakeClock(1000.0)
    open_for: Any = (
        1.0 if options["open_for"] == "seconds" else Backoff.exponential(1.0, 8.0, jitter="none")
    )
    common = {
        **options,
        "open_for": open_for,
        "slow_call_duration": 1.0 if options["slow_call_rate"] else None,
        "ignore": Ignored,
        "clock": clock,
    }
    memory_name, redis_name = fresh_name(), fresh_name()
    memory = CircuitBreaker(memory_name, **common)
    shared = CircuitBreaker(redis_name, store=RedisStore(redis_client), **common)
    pin(shared, clock)
    transitions: dict[str, list[tuple[str, str]]] = {memory_name: [], redis_name: []}

    def on_event(event: object) -> None:
        if isinstance(event, CircuitStateChanged) and event.name in transitions:
            transitions[event.name].append((event.old, event.new))

    subscribe(on_event)
    operated = False
    try:
        for step, argument in schedule:
            if step == "call":
                before = clock.monotonic()
                expected = _run_call(memory, clock, argument)
                clock._now = before  # replay the same call, at the same time, on Redis
                assert _run_call(shared, clock, argument) == expected
            elif step == "advance":
                clock.advance(argument)
            elif step == "operator":
                getattr(memory, argument)()
                getattr(shared, argument)()
                operated = True
            elif argument == "state":
                assert shared.state is memory.state
            else:
                mine, theirs = shared.metrics(), memory.metrics()
                assert (mine.state, mine.calls, mine.failures, mine.slow_calls) == (
                    theirs.state,
                    theirs.calls,
                    theirs.failures,
                    theirs.slow_calls,
                )
                assert mine.consecutive_failures == theirs.consecutive_failures
                if operated or transitions[memory_name]:
                    # (A breaker Redis has never heard of has no start time; memory's is its
                    # construction.)
                    assert mine.since == pytest.approx(theirs.since, abs=1e-3)
            assert shared.state is memory.state
            assert transitions[redis_name] == transitions[memory_name]
    finally:
        unsubscribe(on_event)


# ---------------------------------------------------------------------------------------------
# Shared between breaker objects, threads and processes.
# ---------------------------------------------------------------------------------------------


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(_raise_boom)


def _raise_boom() -> None:
    raise Boom


def test_failures_seen_by_one_breaker_open_every_breaker_with_the_name(redis_url: str) -> None:
    name = fresh_name()
    one = CircuitBreaker(name, consecutive_failures=3, store=RedisStore.from_url(redis_url))
    two = CircuitBreaker(name, consecutive_failures=3, store=RedisStore.from_url(redis_url))
    other = CircuitBreaker(fresh_name(), consecutive_failures=3, store=one.store)  # type: ignore[arg-type]
    _fail(one, 3)
    assert two.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as rejected:
        two.call(lambda: "never")
    assert 29.0 < rejected.value.retry_after <= 30.0
    assert other.call(lambda: "fine") == "fine"
    two.reset()
    assert one.call(lambda: "again") == "again"


WORKER = """
import sys
import redis
from resilient import CircuitBreaker, CircuitOpenError
from resilient.stores import RedisStore

url, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
breaker = CircuitBreaker(name, consecutive_failures=5, open_for=60.0,
                         store=RedisStore(redis.Redis.from_url(url, socket_timeout=5.0)))

def fail():
    raise ConnectionError("upstream down")

if mode == "fail":
    for _ in range(5):
        try:
            breaker.call(fail)
        except ConnectionError:
            pass
try:
    print(breaker.state.value, breaker.call(lambda: "ran"))
except CircuitOpenError as error:
    print(breaker.state.value, "rejected", error.retry_after)
"""


def _worker(redis_url: str, name: str, mode: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, redis_url, name, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_two_processes_share_one_breaker(redis_url: str) -> None:
    name = fresh_name()
    assert _worker(redis_url, name, "observe") == "closed ran"
    # The failures of one process open the breaker for the other (and for this one).
    # The second process starts a second or so later, on a busy machine a few: the open period
    # it sees has run on by that much, and no further than it has taken to start.
    state, outcome, retry_after = _worker(redis_url, name, "fail").split()
    assert (state, outcome) == ("open", "rejected")
    assert 50.0 < float(retry_after) <= 60.0
    state, outcome, later = _worker(redis_url, name, "observe").split()
    assert (state, outcome) == ("open", "rejected")
    assert 0.0 < float(later) <= float(retry_after)
    here = CircuitBreaker(name, consecutive_failures=5, store=RedisStore.from_url(redis_url))
    with pytest.raises(CircuitOpenError):
        here.call(lambda: "never")
    here.reset()  # an operator action in one process applies to all
    assert _worker(redis_url, name, "observe") == "closed ran"


def test_a_half_open_redis_breaker_admits_exactly_its_trials_across_threads(
    redis_url: str,
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(redis_url, socket_timeout=5.0)
    breaker = pinned_breaker(store, clock, 5.0, half_open_calls=3)
    _fail(breaker, 1)
    clock.advance(5.0)
    entered = 0
    lock = threading.Lock()
    release = threading.Event()
    start = threading.Barrier(16)
    outcomes: list[str] = []

    def trial() -> str:
        nonlocal entered
        with lock:
            entered += 1
        release.wait(30)
        return "ok"

    def worker() -> None:
        start.wait(30)
        try:
            outcomes.append(breaker.call(trial))
        except CircuitOpenError:
            outcomes.append("rejected")

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while outcomes.count("rejected") < 13 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(30)
    assert entered == 3
    assert sorted(outcomes) == ["ok"] * 3 + ["rejected"] * 13
    assert breaker.state is CircuitState.CLOSED


def test_trials_lost_with_their_process_are_handed_out_again_after_the_lease(
    redis_client: Any,
) -> None:
    clock = FakeClock()
    breaker = pinned_breaker(RedisStore(redis_client), clock, 2.0)
    backend: Any = breaker._backend
    _fail(breaker, 1)
    clock.advance(2.0)
    lost = backend.acquire(clock.monotonic())  # a trial whose process dies: never recorded
    assert not lost.rejected
    assert lost.trial
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "no slot yet")
    clock.advance(0.1)  # the lease (10 s at least) is over
    assert breaker.call(lambda: "trial") == "trial"
    assert breaker.state is CircuitState.CLOSED
    backend.record(lost, 1, 0.0, clock.monotonic())  # too late: an earlier period
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("options", "op"),
    [
        ({}, "succeed"),
        ({"window": TimeWindow(30.0)}, "fail"),
        ({"open_for": 5.0}, "force_open"),
        ({}, "disable"),
    ],
)
def test_the_breaker_key_always_has_a_ttl(
    redis_client: Any, options: dict[str, Any], op: str
) -> None:
    name = fresh_name()
    breaker = CircuitBreaker(
        name, consecutive_failures=1, store=RedisStore(redis_client), **options
    )
    if op == "succeed":
        breaker.call(lambda: None)
    elif op == "fail":
        _fail(breaker, 1)
    else:
        getattr(breaker, op)()
    assert 0 < redis_client.pttl(state_key(name)) <= 86_400_000


# ---------------------------------------------------------------------------------------------
# Async, on asyncio and trio.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def async_stores(
    redis_url: str, anyio_backend: str
) -> AsyncIterator[Callable[..., RedisStore]]:
    """Make stores for async calls: redis.asyncio on asyncio; under trio a sync client, whose
    calls run in worker threads. Their clients are closed afterwards."""
    made: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        store = RedisStore.from_url(redis_url, asynchronous=anyio_backend == "asyncio", **options)
        made.append(store)
        return store

    yield make
    for store in made:
        if anyio_backend == "asyncio":
            await store.client.aclose()
        else:
            store.client.close()


async def test_async_calls_share_the_breaker(async_stores: Callable[..., RedisStore]) -> None:
    name = fresh_name()
    one = CircuitBreaker(name, consecutive_failures=2, store=async_stores())
    two = CircuitBreaker(name, consecutive_failures=2, store=async_stores())

    @one
    async def failing() -> None:
        raise Boom

    async def fine() -> str:
        return "fine"

    for _ in range(2):
        with pytest.raises(Boom):
            await failing()
    with pytest.raises(CircuitOpenError):
        await two.acall(fine)
    with pytest.raises(CircuitOpenError):
        async with two:
            pass
    assert (await two.ametrics()).state is CircuitState.OPEN
    assert two.state is CircuitState.OPEN  # the state this object saw last
    await one.areset()
    async with two:
        pass
    assert await one.acall(fine) == "fine"
    metrics = await one.ametrics()
    assert (metrics.state, metrics.calls, metrics.failures) == (CircuitState.CLOSED, 2, 0)
    await one.aforce_open()
    with pytest.raises(CircuitOpenError):
        await two.acall(fine)
    await two.adisable()
    assert await one.acall(fine) == "fine"
    assert (await one.ametrics()).state is CircuitState.DISABLED


async def test_a_cancelled_trial_gives_its_slot_back(
    async_stores: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    breaker = pinned_breaker(async_stores(), clock, 1.0)

    async def failing() -> None:
        raise Boom

    async def hang() -> None:
        await anyio.sleep_forever()

    with pytest.raises(Boom):
        await breaker.acall(failing)
    clock.advance(1.0)
    with anyio.move_on_after(0.2):
        await breaker.acall(hang)  # takes the only trial slot, then is cancelled
    assert await breaker.acall(anyio.sleep, 0) is None  # the slot came back: this is the trial
    assert (await breaker.ametrics()).state is CircuitState.CLOSED


async def test_an_async_client_cannot_serve_sync_calls(
    async_redis_client: Any,
) -> None:
    breaker = CircuitBreaker(fresh_name(), store=RedisStore(async_redis_client))
    with pytest.raises(TypeError, match="async calls only"):
        breaker.call(lambda: None)


# ---------------------------------------------------------------------------------------------
# Outages.
# ---------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result = fn()
    except (StoreUnavailable, CircuitOpenError, Boom) as error:
        result = error
    return result, time.monotonic() - started


def test_without_redis_the_breaker_falls_back_to_local_state_and_says_so(
    redis_server: RedisServer, redis_url: str, events: list[object]
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT, error_retry_after=5.0)
    breaker = CircuitBreaker(fresh_name(), consecutive_failures=2, clock=clock, store=store)
    assert breaker.call(lambda: "shared") == "shared"
    redis_server.stop()
    try:
        result, elapsed = _timed(lambda: breaker.call(lambda: "local"))
        assert result == "local"
        assert elapsed < SOCKET_TIMEOUT + 0.5
        errors = [e for e in events if isinstance(e, StoreError)]
        assert [(e.operation, e.action) for e in errors] == [("acquire", "local")]
        # Within the pause, Redis is not asked again: the local breaker decides, fast.
        _fail(breaker, 2)
        result, elapsed = _timed(lambda: breaker.call(lambda: "never"))
        assert isinstance(result, CircuitOpenError)
        assert elapsed < 0.1
        assert len([e for e in events if isinstance(e, StoreError)]) == 1
        assert (CircuitStateChanged("circuit_breaker", breaker.name, "closed", "open")) in events
    finally:
        redis_server.start()
    clock.advance(5.0)  # the pause is over: Redis decides again, and it has no failures
    assert breaker.call(lambda: "shared again") == "shared again"
    assert breaker.metrics().calls == 1
    assert len([e for e in events if isinstance(e, StoreError)]) == 1


def test_on_error_deny_rejects_calls_while_redis_is_down(
    redis_server: RedisServer, redis_url: str, events: list[object]
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(
        redis_url, socket_timeout=SOCKET_TIMEOUT, on_error="deny", error_retry_after=2.0
    )
    breaker = CircuitBreaker(fresh_name(), clock=clock, store=store)
    redis_server.stop()
    try:
        result, elapsed = _timed(lambda: breaker.call(lambda: "never"))
        assert isinstance(result, CircuitOpenError)
        assert result.retry_after == 2.0
        assert elapsed < SOCKET_TIMEOUT + 0.5
        clock.advance(0.5)
        with pytest.raises(CircuitOpenError) as again:
            breaker.call(lambda: "never")
        assert again.value.retry_after == 1.5
    finally:
        redis_server.start()
    assert [(e.operation, e.action) for e in events if isinstance(e, StoreError)] == [
        ("acquire", "deny")
    ]
    clock.advance(1.5)
    assert breaker.call(lambda: "back") == "back"


def test_on_error_raise_raises_store_unavailable_and_never_runs_the_call(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT, on_error="raise")
    breaker = CircuitBreaker(fresh_name(), store=store)
    ran = []
    redis_server.stop()
    try:
        for _ in range(2):  # no pause with "raise": every call asks Redis, and fails
            result, elapsed = _timed(lambda: breaker.call(lambda: ran.append(1)))
            assert isinstance(result, StoreUnavailable)
            assert isinstance(result.__cause__, redis.exceptions.ConnectionError)
            assert elapsed < SOCKET_TIMEOUT + 0.5
        with pytest.raises(StoreUnavailable):
            breaker.force_open()
    finally:
        redis_server.start()
    assert ran == []
    assert breaker.call(lambda: "back") == "back"


def test_an_outcome_that_cannot_reach_redis_is_counted_locally(
    redis_server: RedisServer, redis_url: str, events: list[object]
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT)
    breaker = CircuitBreaker(fresh_name(), consecutive_failures=1, clock=clock, store=store)

    def dies_with_redis() -> None:
        redis_server.stop()
        raise Boom

    try:
        with pytest.raises(Boom):
            breaker.call(dies_with_redis)  # admitted by Redis, reported to the local breaker
        assert [(e.operation, e.action) for e in events if isinstance(e, StoreError)] == [
            ("record", "local")
        ]
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "never")
    finally:
        redis_server.start()


async def test_async_outage_falls_back_and_recovers(
    redis_server: RedisServer, async_stores: Callable[..., RedisStore], events: list[object]
) -> None:
    clock = FakeClock()
    store = async_stores(socket_timeout=SOCKET_TIMEOUT, error_retry_after=1.0)
    breaker = CircuitBreaker(fresh_name(), consecutive_failures=1, clock=clock, store=store)

    async def fine() -> str:
        return "fine"

    assert await breaker.acall(fine) == "fine"
    redis_server.stop()
    try:
        started = time.monotonic()
        assert await breaker.acall(fine) == "fine"
        assert time.monotonic() - started < SOCKET_TIMEOUT + 0.5
    finally:
        redis_server.start()
    assert [(e.operation, e.action) for e in events if isinstance(e, StoreError)] == [
        ("acquire", "local")
    ]
    clock.advance(1.0)
    assert await breaker.acall(fine) == "fine"
    assert (await breaker.ametrics()).calls == 1


# ---------------------------------------------------------------------------------------------
# Arguments.
# ---------------------------------------------------------------------------------------------


def test_the_store_must_be_a_store() -> None:
    with pytest.raises(TypeError, match="store must be a MemoryStore or a RedisStore"):
        CircuitBreaker("x", store=object())  # type: ignore[arg-type]


def test_a_memory_store_keeps_the_breaker_in_process() -> None:
    breaker = CircuitBreaker("x", consecutive_failures=1, store=MemoryStore())
    _fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert "state=open" in repr(breaker)


def test_the_repr_of_a_shared_breaker_does_no_io(redis_client: Any) -> None:
    breaker = CircuitBreaker("x", store=RedisStore(redis_client, prefix="p"))
    assert repr(breaker).startswith("CircuitBreaker('x', store=RedisStore(")


def test_configuration_shares_a_breaker_through_redis_url(redis_url: str) -> None:
    from resilient.config import load_policies

    section = {"consecutive_failures": 2, "redis_url": redis_url, "on_error": "deny"}
    first = load_policies({"orders": {"circuit_breaker": section}})["orders"]
    second = load_policies({"orders": {"circuit_breaker": section}})["orders"]
    breaker = first.policies[0]
    assert isinstance(breaker, CircuitBreaker)
    assert isinstance(breaker.store, RedisStore)
    assert breaker.store.on_error == "deny"
    for _ in range(2):
        with pytest.raises(Boom):
            first.call(_raise_boom)
    with pytest.raises(CircuitOpenError):
        second.call(lambda: "never")


def test_with_on_error_raise_a_lost_outcome_is_not_raised_and_the_next_call_asks_redis(
    redis_server: RedisServer, redis_url: str, events: list[object]
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT, on_error="raise")
    breaker = CircuitBreaker(fresh_name(), store=store)

    def dies_with_redis() -> str:
        redis_server.stop()
        return "done"

    try:
        assert breaker.call(dies_with_redis) == "done"  # the result, not StoreUnavailable
        with pytest.raises(StoreUnavailable):
            breaker.call(lambda: "never")
    finally:
        redis_server.start()
    assert [(e.operation, e.action) for e in events if isinstance(e, StoreError)] == [
        ("record", "local"),
        ("acquire", "raise"),
    ]


def test_the_trial_lease_runs_from_when_the_trial_was_handed_out(redis_client: Any) -> None:
    clock = FakeClock()
    breaker = pinned_breaker(RedisStore(redis_client), clock, 1.0)
    backend: Any = breaker._backend
    _fail(breaker, 1)
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN  # entered by a look, long before any trial
    clock.advance(60.0)
    trial = backend.acquire(clock.monotonic())
    assert trial.trial
    clock.advance(0.005)
    with pytest.raises(CircuitOpenError):  # the trial in flight is not presumed lost
        breaker.call(lambda: "second trial")
    backend.record(trial, 1, 0.0, clock.monotonic())
    assert breaker.state is CircuitState.OPEN


def test_time_buckets_narrower_than_a_millisecond_are_refused(redis_client: Any) -> None:
    with pytest.raises(ValueError, match="window: with a RedisStore, time buckets must be"):
        CircuitBreaker("x", window=TimeWindow(0.005, 10), store=RedisStore(redis_client))


async def test_a_timeout_firing_inside_a_shared_breaker_counts_as_a_slow_failure(
    async_stores: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(fresh_name(), minimum_calls=3, clock=clock, store=async_stores())
    pin(breaker, clock)
    guarded = Pipeline(timeout(0.05, clock=clock), breaker)

    async def hang() -> None:
        while True:
            await clock.asleep(0.01)

    for _ in range(3):
        with pytest.raises(DeadlineExceeded):
            await guarded.acall(hang)
    metrics = await breaker.ametrics()
    assert (metrics.state, metrics.calls, metrics.failures, metrics.slow_calls) == (
        CircuitState.OPEN,
        3,
        3,
        3,
    )


def test_deadline_exceeded_inside_a_sync_shared_call_counts_as_a_slow_failure(
    redis_client: Any,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        fresh_name(), minimum_calls=2, clock=clock, store=RedisStore(redis_client)
    )
    pin(breaker, clock)

    def late() -> None:
        with timeout(0.0, clock=clock):  # the deadline in scope has already passed
            pass

    with pytest.raises(DeadlineExceeded):
        breaker.call(late)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.slow_calls) == (1, 1, 1)


def test_on_state_change_hears_the_transitions_a_shared_breaker_makes(redis_client: Any) -> None:
    clock = FakeClock()
    heard: list[CircuitStateChanged] = []
    breaker = pinned_breaker(RedisStore(redis_client), clock, 1.0, on_state_change=heard.append)
    _fail(breaker, 1)
    clock.advance(1.0)
    breaker.call(lambda: None)
    assert [(e.old, e.new) for e in heard] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.parametrize("on_error", ["allow", "deny", "raise"])
def test_state_reads_in_an_outage_give_the_last_state_seen_flagged_stale(
    redis_server: RedisServer, redis_url: str, events: list[object], on_error: str
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT, on_error=on_error)
    breaker = CircuitBreaker(
        fresh_name(), consecutive_failures=2, open_for=60, clock=clock, store=store
    )
    pin(breaker, clock)
    _fail(breaker, 2)
    seen = breaker.metrics()
    assert (seen.state, seen.failures, seen.stale) == (CircuitState.OPEN, 2, False)
    redis_server.stop()
    try:
        assert breaker.state is CircuitState.OPEN  # not CLOSED, and no error
        stale = breaker.metrics()
        assert stale.stale
        assert (stale.state, stale.calls, stale.failures, stale.since) == (
            CircuitState.OPEN,
            2,
            2,
            seen.since,
        )
        reads = [e for e in events if isinstance(e, StoreError)]
        assert {(e.operation, e.action) for e in reads} == {("read", "stale")}
    finally:
        redis_server.start()
    assert not breaker.metrics().stale  # (a restarted Redis has lost the state: CLOSED)


def test_a_state_read_before_any_answer_is_closed_and_stale(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore.from_url(redis_url, socket_timeout=SOCKET_TIMEOUT, on_error="raise")
    breaker = CircuitBreaker(fresh_name(), store=store)
    redis_server.stop()
    try:
        metrics = breaker.metrics()
    finally:
        redis_server.start()
    assert (metrics.state, metrics.calls, metrics.stale) == (CircuitState.CLOSED, 0, True)


async def test_async_state_reads_in_an_outage_are_stale(
    redis_server: RedisServer, async_stores: Callable[..., RedisStore]
) -> None:
    clock = FakeClock()
    store = async_stores(socket_timeout=SOCKET_TIMEOUT, on_error="deny")
    breaker = pinned_breaker(store, clock, 60.0)

    async def failing() -> None:
        raise Boom

    with pytest.raises(Boom):
        await breaker.acall(failing)
    assert (await breaker.ametrics()).state is CircuitState.OPEN
    redis_server.stop()
    try:
        metrics = await breaker.ametrics()
        assert breaker.state is CircuitState.OPEN
    finally:
        redis_server.start()
    assert (metrics.state, metrics.failures, metrics.stale) == (CircuitState.OPEN, 1, True)


async def _trial_interrupted_while_redis_is_paused(
    redis_client: Any, store: RedisStore, cancel: Callable[..., Any]
) -> CircuitBreaker:
    """Open a shared breaker, let its open period end, and make a trial call that pauses Redis
    (CLIENT PAUSE) before it returns, so that ``cancel`` interrupts the caller while the
    trial's outcome is being recorded."""
    breaker = CircuitBreaker(fresh_name(), consecutive_failures=1, open_for=0.0, store=store)

    async def failing() -> None:
        raise Boom

    with pytest.raises(Boom):
        await breaker.acall(failing)
    await cancel(breaker, lambda: redis_client.execute_command("CLIENT", "PAUSE", 400, "ALL"))
    return breaker


async def _by_resilient_timeout(breaker: CircuitBreaker, pause: Callable[[], Any]) -> None:
    async def trial() -> None:
        pause()

    with pytest.raises(DeadlineExceeded):
        async with timeout(0.05):
            await breaker.acall(trial)


async def _by_asyncio_timeout(breaker: CircuitBreaker, pause: Callable[[], Any]) -> None:
    import asyncio

    async def trial() -> None:
        pause()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await breaker.acall(trial)


async def _by_task_cancel(breaker: CircuitBreaker, pause: Callable[[], Any]) -> None:
    import asyncio

    async def trial() -> None:
        pause()

    task = asyncio.ensure_future(breaker.acall(trial))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_trial_record_cut_by_resilient_timeout_still_reaches_redis(
    redis_client: Any, async_stores: Callable[..., RedisStore]
) -> None:
    store = async_stores(socket_timeout=5.0)
    breaker = await _trial_interrupted_while_redis_is_paused(
        redis_client, store, _by_resilient_timeout
    )
    # The trial's success was recorded: CLOSED, not stuck HALF_OPEN with the trial taken.
    assert (await breaker.ametrics()).state is CircuitState.CLOSED
    assert await breaker.acall(anyio.sleep, 0) is None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("cancel", [_by_asyncio_timeout, _by_task_cancel])
async def test_a_trial_record_cut_by_native_asyncio_cancellation_still_reaches_redis(
    redis_client: Any, async_stores: Callable[..., RedisStore], cancel: Callable[..., Any]
) -> None:
    store = async_stores(socket_timeout=5.0)
    breaker = await _trial_interrupted_while_redis_is_paused(redis_client, store, cancel)
    assert (await breaker.ametrics()).state is CircuitState.CLOSED
    assert await breaker.acall(anyio.sleep, 0) is None


def test_a_count_window_is_a_2_bit_ring_beside_small_running_totals(redis_client: Any) -> None:
    # What makes a call O(1) whatever the window's size: no field of the hash grows with the
    # window (no ring string to read and rewrite), and each call reads and writes 2 bits.
    name = fresh_name()
    breaker = CircuitBreaker(
        name, failure_rate=0.9, window=CountWindow(1000), store=RedisStore(redis_client)
    )
    for i in range(300):
        if i % 3:
            breaker.call(lambda: None)
        else:
            with pytest.raises(Boom):
                breaker.call(_raise_boom)
    key = state_key(name)
    fields = redis_client.hgetall(key)
    assert max(len(value) for value in fields.values()) <= 20
    ring = key.removesuffix(":state") + ":ring"
    assert redis_client.strlen(ring) == 300 * 2 // 8
    assert 0 < redis_client.pttl(ring) <= redis_client.pttl(key) + 1000
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (300, 100)


def test_a_window_kept_by_an_earlier_version_in_the_hash_starts_afresh(redis_client: Any) -> None:
    name = fresh_name()
    breaker = CircuitBreaker(
        name, window=CountWindow(4), minimum_calls=4, store=RedisStore(redis_client)
    )
    breaker.call(lambda: None)
    # The layout of earlier versions: the outcomes as a string of codes in the hash.
    redis_client.hset(state_key(name), mapping={"ring": "1111", "idx": 0, "n": 4, "f": 4})
    breaker.call(lambda: None)
    metrics = breaker.metrics()
    assert (metrics.state, metrics.calls, metrics.failures) == (CircuitState.CLOSED, 1, 0)
    assert not redis_client.hexists(state_key(name), "ring")


BUSY_LUA = "for i = 1, tonumber(ARGV[1]) do end return 1"


async def test_a_trial_acquire_cut_while_redis_is_busy_gives_its_slot_back(
    redis_client: Any, async_stores: Callable[..., RedisStore]
) -> None:
    # Redis runs a long script from another connection; meanwhile this process asks for the
    # trial and is cancelled by its timeout. Redis still hands the trial out once it is free:
    # that trial must come back, or the breaker rejects every call for the whole lease.
    breaker = CircuitBreaker(
        fresh_name(), consecutive_failures=1, open_for=0.0, store=async_stores(socket_timeout=10)
    )

    async def failing() -> None:
        raise Boom

    with pytest.raises(Boom):
        await breaker.acall(failing)
    busy = threading.Thread(target=redis_client.eval, args=(BUSY_LUA, 0, 30_000_000))
    busy.start()
    await anyio.sleep(0.05)
    try:
        with pytest.raises(DeadlineExceeded):
            async with timeout(0.05):
                await breaker.acall(anyio.sleep, 0)
    finally:
        await anyio.to_thread.run_sync(busy.join)
    assert await breaker.acall(anyio.sleep, 0) is None  # the trial was given back: this is it
    assert (await breaker.ametrics()).state is CircuitState.CLOSED


# -- breaker_staleness: a CLOSED reply trusted for a while ------------------------------------


def _count_scripts(store: RedisStore) -> list[str]:
    """Spy on ``store``'s client: the op of every breaker script call it makes, in order."""
    ops: list[str] = []
    execute = store.client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        reply = execute(*args, **kwargs)  # a NOSCRIPT retried with the script is one call
        if args and args[0] in ("EVALSHA", "EVAL"):
            ops.append(_text_of(args[5]))  # EVALSHA sha 2 key ring op ...
        return reply

    store.client.execute_command = spy
    return ops


def _text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_breaker_staleness_is_opt_in_and_checked(redis_client: Any) -> None:
    assert RedisStore(redis_client).breaker_staleness == 0.0
    assert RedisStore(redis_client, breaker_staleness=0.25).breaker_staleness == 0.25
    with pytest.raises(TypeError, match="breaker_staleness"):
        RedisStore(redis_client, breaker_staleness="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="breaker_staleness"):
        RedisStore(redis_client, breaker_staleness=-1.0)
    with pytest.raises(ValueError, match="breaker_staleness"):
        RedisStore(redis_client, breaker_staleness=float("inf"))


def test_by_default_every_call_asks_redis_then_records(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    ops = _count_scripts(store)
    breaker = CircuitBreaker(fresh_name(), store=store)
    try:
        for _ in range(3):
            assert breaker.call(lambda: "ok") == "ok"
    finally:
        store.client.close()
    assert ops == ["acquire", "record"] * 3


def test_a_trusted_closed_state_makes_a_call_one_round_trip_and_counts_stay_exact(
    redis_url: str,
) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(redis_url, breaker_staleness=1.0)
    ops = _count_scripts(store)
    name = fresh_name()
    breaker = CircuitBreaker(name, failure_rate=0.5, minimum_calls=1000, clock=clock, store=store)
    try:
        for i in range(10):
            if i % 2:
                with pytest.raises(Boom):
                    breaker.call(_raise_boom_here)
            else:
                assert breaker.call(lambda: "ok") == "ok"
            clock.advance(0.5)  # each record's reply renews the trust: no acquire needed
        metrics = breaker.metrics()
    finally:
        store.client.close()
    assert ops == ["acquire", *["record"] * 10, "read"]
    assert (metrics.calls, metrics.failures) == (10, 5)


def _raise_boom_here() -> None:
    raise Boom


def test_an_opening_by_another_client_is_seen_once_the_trust_runs_out(redis_url: str) -> None:
    """Two clients sharing one breaker, as two processes would, on one fake clock."""
    clock = FakeClock()
    name = fresh_name()
    trusting_store = RedisStore.from_url(redis_url, breaker_staleness=2.0)
    other_store = RedisStore.from_url(redis_url)
    ops = _count_scripts(trusting_store)
    options: dict[str, Any] = {"consecutive_failures": 1, "open_for": 60.0, "clock": clock}
    trusting = CircuitBreaker(name, **options, store=trusting_store)
    other = CircuitBreaker(name, **options, store=other_store)
    try:
        assert trusting.call(lambda: "ok") == "ok"  # acquire + record: CLOSED trusted for 2 s
        with pytest.raises(Boom):
            other.call(_raise_boom_here)  # the other process opens the breaker
        with pytest.raises(CircuitOpenError):
            other.call(lambda: "never")
        clock.advance(1.5)
        # Within the bound: still admitted (the stated price), without asking Redis...
        assert trusting.call(lambda: "stale") == "stale"
        # ...and its outcome, from the period that has ended, is dropped: the record's reply
        # says OPEN, which ends the trust at once.
        with pytest.raises(CircuitOpenError):
            trusting.call(lambda: "never")
        metrics = other.metrics()
    finally:
        trusting_store.client.close()
        other_store.client.close()
    assert ops == ["acquire", "record", "record", "acquire"]
    assert metrics.state is CircuitState.OPEN


def test_without_calls_meanwhile_the_trust_ends_after_the_bound(redis_url: str) -> None:
    clock = FakeClock()
    name = fresh_name()
    trusting_store = RedisStore.from_url(redis_url, breaker_staleness=2.0)
    other_store = RedisStore.from_url(redis_url)
    options: dict[str, Any] = {"consecutive_failures": 1, "open_for": 60.0, "clock": clock}
    trusting = CircuitBreaker(name, **options, store=trusting_store)
    other = CircuitBreaker(name, **options, store=other_store)
    try:
        assert trusting.call(lambda: "ok") == "ok"
        other.force_open()
        clock.advance(2.0)  # the bound: from here on, Redis is asked again
        with pytest.raises(CircuitOpenError):
            trusting.call(lambda: "never")
    finally:
        trusting_store.client.close()
        other_store.client.close()


def test_its_own_opening_and_operator_actions_end_the_trust_at_once(redis_url: str) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(redis_url, breaker_staleness=60.0)
    breaker = CircuitBreaker(
        fresh_name(), consecutive_failures=1, open_for=60.0, clock=clock, store=store
    )
    try:
        assert breaker.call(lambda: "ok") == "ok"
        with pytest.raises(Boom):
            breaker.call(_raise_boom_here)
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "never")
        breaker.reset()
        assert breaker.call(lambda: "ok") == "ok"
        breaker.force_open()
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "never")
    finally:
        store.client.close()


def test_an_outage_ends_the_trust(redis_server: RedisServer, redis_url: str) -> None:
    clock = FakeClock()
    store = RedisStore.from_url(
        redis_url, socket_timeout=SOCKET_TIMEOUT, on_error="deny", breaker_staleness=60.0
    )
    breaker = CircuitBreaker(fresh_name(), clock=clock, store=store)
    try:
        assert breaker.call(lambda: "ok") == "ok"
        redis_server.stop()
        try:
            # The record cannot reach Redis: counted locally, and the trust ends with it.
            assert breaker.call(lambda: "ok") == "ok"
            with pytest.raises(CircuitOpenError):  # on_error="deny": Redis is asked, and fails
                breaker.call(lambda: "never")
        finally:
            redis_server.start()
    finally:
        store.client.close()


def test_real_clocks_two_clients_the_opening_is_seen_within_the_bound(redis_url: str) -> None:
    """On real clocks: no call is admitted later than the bound after the opening returned."""
    staleness = 0.2
    name = fresh_name()
    trusting_store = RedisStore.from_url(redis_url, breaker_staleness=staleness, socket_timeout=5)
    other_store = RedisStore.from_url(redis_url, socket_timeout=5)
    trusting = CircuitBreaker(name, consecutive_failures=1, open_for=60.0, store=trusting_store)
    other = CircuitBreaker(name, consecutive_failures=1, open_for=60.0, store=other_store)
    admitted: list[float] = []
    stop = threading.Event()

    def calls() -> None:
        for _ in range(100_000):  # bounded; ends when rejected
            start = time.monotonic()
            try:
                trusting.call(lambda: None)
            except CircuitOpenError:
                stop.set()
                return
            admitted.append(start)

    worker = threading.Thread(target=calls)
    try:
        worker.start()
        time.sleep(0.05)
        other.force_open()
        opened = time.monotonic()
        worker.join(timeout=30)
    finally:
        stop.set()
        worker.join()
        trusting_store.client.close()
        other_store.client.close()
    assert stop.is_set()  # the opening was seen
    late = [start - opened for start in admitted if start >= opened]
    assert all(delay < staleness for delay in late)


async def test_async_calls_trust_a_closed_state_too(
    async_stores: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    name = fresh_name()
    trusting = CircuitBreaker(
        name,
        consecutive_failures=1,
        open_for=60.0,
        clock=clock,
        store=async_stores(breaker_staleness=2.0),
    )
    other = CircuitBreaker(
        name, consecutive_failures=1, open_for=60.0, clock=clock, store=async_stores()
    )

    async def work() -> str:
        return "ok"

    assert await trusting.acall(work) == "ok"
    await other.aforce_open()
    clock.advance(1.0)
    assert await trusting.acall(work) == "ok"  # within the bound: admitted
    with pytest.raises(CircuitOpenError):  # that record's reply said FORCED_OPEN
        await trusting.acall(work)
