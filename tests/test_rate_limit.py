"""Rate limiters: the pure algorithms against independent models, and the limiters on memory."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient import Decision, RateLimitedError, SlidingWindow, TokenBucket
from resilient._deadline import enter_deadline, exit_deadline
from resilient._rate_limit import TICKS_PER_SECOND, gcra, sliding_counter, sliding_log
from resilient.instrumentation import RateLimited, subscribe, unsubscribe
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

from ._concurrency import admitted_by_tasks, admitted_by_threads

# Every test runs on the C and on the pure Python memory token bucket.
pytestmark = pytest.mark.usefixtures("gcra_impl")

# ---------------------------------------------------------------------------------------------
# Independent models, in exact fractions: what the algorithms are supposed to compute.
# ---------------------------------------------------------------------------------------------


class BucketModel:
    """A textbook token bucket with exact arithmetic, for one key (GCRA must agree with it)."""

    def __init__(self, interval: int, capacity: int) -> None:
        self.rate = Fraction(1, interval)  # tokens per tick
        self.capacity = capacity
        self.tokens = Fraction(capacity)
        self.at: int | None = None

    def decide(self, now: int, cost: int) -> tuple[bool, int, Fraction, Fraction]:
        if self.at is not None:
            self.tokens = min(Fraction(self.capacity), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= cost:
            self.tokens -= cost
            allowed, retry_after = True, Fraction(0)
        else:
            allowed, retry_after = False, (cost - self.tokens) / self.rate
        reset_after = (self.capacity - self.tokens) / self.rate
        return allowed, math.floor(self.tokens), retry_after, reset_after


def log_model(granted: list[int], now: int, window: int, limit: int, cost: int) -> tuple[bool, int]:
    """Exact sliding log: count what was granted in (now - window, now]."""
    used = sum(1 for t in granted if now - window < t)
    return used + cost <= limit, limit - used - (cost if used + cost <= limit else 0)


def counter_model(
    counts: dict[int, int], now: int, window: int, limit: int, cost: int
) -> tuple[bool, int]:
    """Cloudflare's estimate, exact: previous slot weighted by what is left of this one."""
    slot = now // window
    left = window - (now - slot * window)
    used = Fraction(counts.get(slot - 1, 0) * left, window) + counts.get(slot, 0)
    allowed = used + cost <= limit
    after = used + (cost if allowed else 0)
    return allowed, max(0, math.floor(limit - after))


steps = st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(1, 4)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(interval=st.integers(1, 2_000_000), capacity=st.integers(1, 10), schedule=steps)
def test_gcra_matches_an_exact_token_bucket(
    interval: int, capacity: int, schedule: list[tuple[int, int]]
) -> None:
    model = BucketModel(interval, capacity)
    tat: int | None = None
    now = 10**12
    for advance, cost in schedule:
        now += advance
        cost = min(cost, capacity)
        allowed, remaining, retry_after, reset_after, tat = gcra(
            tat, now, interval, interval * capacity, cost
        )
        assert (allowed, remaining, retry_after, reset_after) == model.decide(now, cost)


@settings(max_examples=300, deadline=None)
@given(
    window=st.integers(1, 5_000_000),
    limit=st.integers(1, 10),
    schedule=steps,
)
def test_sliding_log_matches_an_exact_count(
    window: int, limit: int, schedule: list[tuple[int, int]]
) -> None:
    entries: list[int] = []
    granted: list[int] = []
    now = 10**12
    for advance, cost in schedule:
        now += advance
        cost = min(cost, limit)
        allowed, remaining, retry_after, reset_after, entries = sliding_log(
            entries, now, window, limit, cost
        )
        assert (allowed, remaining) == log_model(granted, now, window, limit, cost)
        if allowed:
            granted += [now] * cost
            assert (retry_after, reset_after) == (0, window)
        else:
            # The cost fits exactly once enough old grants have left the window.
            assert log_model(granted, now + retry_after, window, limit, cost)[0]
            assert not log_model(granted, now + retry_after - 1, window, limit, cost)[0]
            assert reset_after == max(granted) + window - now


@settings(max_examples=300, deadline=None)
@given(
    window=st.integers(1, 5_000_000),
    limit=st.integers(1, 10),
    schedule=steps,
)
def test_sliding_counter_matches_the_weighted_estimate(
    window: int, limit: int, schedule: list[tuple[int, int]]
) -> None:
    state: tuple[int, int, int] | None = None
    counts: dict[int, int] = {}
    now = 10**12
    for advance, cost in schedule:
        now += advance
        cost = min(cost, limit)
        allowed, remaining, retry_after, reset_after, state = sliding_counter(
            state, now, window, limit, cost
        )
        assert (allowed, remaining) == counter_model(counts, now, window, limit, cost)
        if allowed:
            counts[now // window] = counts.get(now // window, 0) + cost
            assert retry_after == 0
        else:
            assert counter_model(counts, now + retry_after, window, limit, cost)[0]
            assert not counter_model(counts, now + retry_after - 1, window, limit, cost)[0]
        # Back to full exactly after reset_after, not a tick sooner.
        assert counter_model(counts, now + reset_after, window, limit, 0)[1] == limit
        if reset_after > 0:
            assert counter_model(counts, now + reset_after - 1, window, limit, 0)[1] < limit


# ---------------------------------------------------------------------------------------------
# The memory store applies the same formulas (the token bucket's are inlined for speed).
# ---------------------------------------------------------------------------------------------

schedules = st.lists(
    st.tuples(
        st.integers(0, 400_000),  # microseconds to advance
        st.sampled_from(["", "a", "b"]),
        st.integers(1, 5),
    ),
    min_size=1,
    max_size=40,
)


def seconds(ticks: int) -> float:
    return ticks / TICKS_PER_SECOND


@settings(max_examples=150, deadline=None)
@given(
    rate=st.sampled_from([0.5, 3.0, 7.0, 10.0, 250.0]),
    capacity=st.integers(1, 6),
    schedule=schedules,
)
def test_memory_token_bucket_decides_like_gcra(
    rate: float, capacity: int, schedule: list[tuple[int, str, int]]
) -> None:
    clock = FakeClock(1000.0)
    limiter = TokenBucket(rate, capacity, clock=clock)
    interval = round(TICKS_PER_SECOND / rate)
    tats: dict[str, int | None] = {}
    for advance, key, cost in schedule:
        clock.advance(seconds(advance))
        cost = min(cost, capacity)
        now = round(clock.monotonic() * TICKS_PER_SECOND)
        allowed, remaining, retry_after, reset_after, tats[key] = gcra(
            tats.get(key), now, interval, interval * capacity, cost
        )
        expected = Decision(
            allowed, capacity, remaining, seconds(retry_after), seconds(reset_after)
        )
        assert limiter.try_acquire(key, cost) == expected


@settings(max_examples=150, deadline=None)
@given(
    window=st.sampled_from([0.25, 1.0, 1.5]),
    limit=st.integers(1, 6),
    precise=st.booleans(),
    schedule=schedules,
)
def test_memory_sliding_window_decides_like_the_reference(
    window: float, limit: int, precise: bool, schedule: list[tuple[int, str, int]]
) -> None:
    clock = FakeClock(1000.0)
    limiter = SlidingWindow(limit, window, precise=precise, clock=clock)
    ticks = round(window * TICKS_PER_SECOND)
    states: dict[str, object] = {}
    for advance, key, cost in schedule:
        clock.advance(seconds(advance))
        cost = min(cost, limit)
        now = round(clock.monotonic() * TICKS_PER_SECOND)
        if precise:
            result = sliding_log(states.get(key, []), now, ticks, limit, cost)  # type: ignore[arg-type]
        else:
            result = sliding_counter(states.get(key), now, ticks, limit, cost)  # type: ignore[arg-type]
        allowed, remaining, retry_after, reset_after, new_state = result
        if allowed:
            states[key] = new_state
        expected = Decision(allowed, limit, remaining, seconds(retry_after), seconds(reset_after))
        assert limiter.try_acquire(key, cost) == expected


# ---------------------------------------------------------------------------------------------
# Behaviour of the limiters.
# ---------------------------------------------------------------------------------------------


def test_token_bucket_starts_full_and_refills_at_rate() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=10.0, capacity=3, clock=clock)
    assert [limiter.try_acquire().allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.try_acquire()
    assert refused == Decision(False, 3, 0, 0.1, 0.3)
    assert not refused  # a Decision is truthy exactly when allowed
    clock.advance(0.1)
    assert limiter.try_acquire() == Decision(True, 3, 0, 0.0, 0.3)


def test_token_bucket_decision_reports_capacity_as_limit() -> None:
    limiter = TokenBucket(rate=1.0, capacity=7, clock=FakeClock())
    assert limiter.try_acquire(cost=3) == Decision(True, 7, 4, 0.0, 3.0)


def test_keys_have_separate_limits() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=1, clock=clock)
    assert limiter.try_acquire("alice")
    assert not limiter.try_acquire("alice")
    assert limiter.try_acquire("bob")
    assert limiter.try_acquire("")


def test_sliding_window_weighs_the_previous_window() -> None:
    clock = FakeClock(0.0)
    limiter = SlidingWindow(limit=10, window=60.0, clock=clock)
    assert limiter.try_acquire(cost=10)
    clock.advance(60.0 + 15.0)  # previous window: 10, weighted by 45/60 -> 7.5
    decision = limiter.try_acquire(cost=2)
    assert decision == Decision(True, 10, 0, 0.0, 105.0)
    assert not limiter.try_acquire()


def test_precise_sliding_window_forgets_exactly_after_the_window() -> None:
    clock = FakeClock(5.0)
    limiter = SlidingWindow(limit=2, window=1.0, precise=True, clock=clock)
    assert limiter.try_acquire()
    clock.advance(0.5)
    assert limiter.try_acquire()
    assert limiter.try_acquire() == Decision(False, 2, 0, 0.5, 1.0)
    clock.advance(0.5)
    assert limiter.try_acquire()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TokenBucket(rate=1.0, capacity=5).try_acquire(cost=6), "cost must be <= "),
        (lambda: TokenBucket(rate=1.0, capacity=5).try_acquire(cost=0), "cost must be >= 1"),
        (lambda: SlidingWindow(3, 1.0).try_acquire(cost=4), "cost must be <= "),
        (lambda: SlidingWindow(3, 1.0).acquire(cost=4, max_wait=None), "cost must be <= "),
        (lambda: SlidingWindow(3, 1.0).guard(cost=-1), "cost must be >= 1"),
        (lambda: TokenBucket(rate=0.0, capacity=1), "rate must be a finite number > 0"),
        (lambda: TokenBucket(rate=-1.0, capacity=1), "rate must be"),
        (lambda: TokenBucket(rate=float("nan"), capacity=1), "rate must be"),
        (lambda: TokenBucket(rate=float("inf"), capacity=1), "rate must be"),
        (lambda: TokenBucket(rate=2e6, capacity=1), "rate must be <= 1000000"),
        (lambda: TokenBucket(rate=1.0, capacity=0), "capacity must be >= 1"),
        (lambda: TokenBucket(rate=1e-9, capacity=10**9), "capacity / rate"),
        (lambda: TokenBucket(rate=1.0, capacity=1, max_wait=-1), "max_wait must be >= 0"),
        (lambda: SlidingWindow(limit=0, window=1.0), "limit must be >= 1"),
        (lambda: SlidingWindow(limit=1, window=0.0), "window must be a finite number > 0"),
        (lambda: SlidingWindow(limit=1, window=1e-9), "window must be at least"),
        (lambda: SlidingWindow(limit=1, window=1e12), "window must be at most"),
        (lambda: TokenBucket(rate=1.0, capacity=1, name=""), "name must not be empty"),
        (lambda: MemoryStore(max_keys=0), "max_keys must be >= 1"),
    ],
)
def test_nonsense_is_a_value_error_naming_the_argument(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TokenBucket(rate=1.0, capacity=2).try_acquire(cost=1.5), "cost must be an int"),
        (lambda: TokenBucket(rate=1.0, capacity=2).try_acquire(cost=True), "cost must be an int"),
        (lambda: TokenBucket(rate=1.0, capacity=2.0), "capacity must be an int"),
        (lambda: TokenBucket(rate="1", capacity=2), "rate must be a number"),
        (lambda: SlidingWindow(2, 1.0, precise=1), "precise must be a bool"),
        (lambda: TokenBucket(rate=1.0, capacity=2, store=object()), "store must be"),
        (lambda: TokenBucket(rate=1.0, capacity=2, clock=object()), "clock must provide"),
        (lambda: TokenBucket(rate=1.0, capacity=2).guard(3), "key must be a str"),
    ],
)
def test_wrong_types_are_type_errors_naming_the_argument(make: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make()  # type: ignore[operator]


def test_acquire_waits_on_the_clock_for_capacity() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=4.0, capacity=1, clock=clock)
    limiter.acquire()
    decision = limiter.acquire(max_wait=1.0)
    assert decision.allowed
    assert clock.sleeps == [0.25]


def test_acquire_refuses_at_once_when_the_wait_exceeds_max_wait() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=2, clock=clock, name="api")
    limiter.acquire(cost=2)
    with pytest.raises(RateLimitedError) as info:
        limiter.acquire(max_wait=0.5)
    assert info.value.name == "api"
    assert info.value.retry_after == 1.0
    assert isinstance(info.value.decision, Decision)
    assert not info.value.decision.allowed
    assert clock.sleeps == []


def test_acquire_never_waits_past_the_deadline() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=1, clock=clock)
    limiter.acquire()
    _, token = enter_deadline(0.5, clock)
    try:
        with pytest.raises(RateLimitedError):
            limiter.acquire(max_wait=None)
    finally:
        exit_deadline(token)
    assert clock.sleeps == []
    _, token = enter_deadline(2.0, clock)
    try:
        assert limiter.acquire(max_wait=None)
    finally:
        exit_deadline(token)
    assert clock.sleeps == [1.0]


async def test_async_acquire_waits_and_respects_max_wait() -> None:
    clock = FakeClock()
    limiter = SlidingWindow(limit=1, window=2.0, precise=True, clock=clock)
    assert (await limiter.atry_acquire()).allowed
    with pytest.raises(RateLimitedError):
        await limiter.aacquire(max_wait=1.0)
    assert (await limiter.aacquire(max_wait=2.0)).allowed
    assert clock.sleeps == [2.0]


async def test_async_acquire_never_waits_past_the_deadline() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=1, clock=clock)
    await limiter.aacquire()
    _, token = enter_deadline(0.2, clock)
    try:
        with pytest.raises(RateLimitedError):
            await limiter.aacquire()
    finally:
        exit_deadline(token)
    assert clock.sleeps == []


def test_decorator_and_with_take_the_global_key_without_waiting() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=2, clock=clock)

    @limiter
    def work(x: int) -> int:
        return x * 2

    assert work(2) == 4
    with limiter as decision:
        assert decision.remaining == 0
    with pytest.raises(RateLimitedError), limiter:
        pass
    with pytest.raises(RateLimitedError):
        work(1)
    clock.advance(1.0)
    assert limiter.call(lambda x: x * 3, 3) == 9
    assert clock.sleeps == []


def test_max_wait_option_lets_the_decorator_wait() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=2.0, capacity=1, clock=clock, max_wait=1.0)

    @limiter
    def work() -> str:
        return "done"

    assert work() == "done"
    assert work() == "done"
    assert clock.sleeps == [0.5]


async def test_async_decorator_and_async_with() -> None:
    clock = FakeClock()
    limiter = SlidingWindow(limit=2, window=10.0, clock=clock)

    @limiter
    async def work(x: int) -> int:
        return x + 1

    assert await work(1) == 2
    async with limiter:
        pass
    with pytest.raises(RateLimitedError):
        await work(1)
    clock.advance(20.0)

    async def other(x: int) -> int:
        return x * 10

    assert await limiter.acall(other, 5) == 50


async def test_guard_charges_its_key_and_cost() -> None:
    clock = FakeClock()
    limiter = TokenBucket(rate=1.0, capacity=4, clock=clock)
    guard = limiter.guard("search", cost=2, max_wait=0)

    @guard
    def search() -> str:
        return "results"

    assert search() == "results"
    with guard as decision:
        assert decision.remaining == 0
    with pytest.raises(RateLimitedError):
        search()
    async with limiter.guard("other", cost=4):
        pass
    assert limiter.try_acquire().remaining == 3  # the global key was not charged


def test_refusals_emit_rate_limited_events() -> None:
    seen: list[object] = []
    subscribe(seen.append)
    try:
        clock = FakeClock()
        limiter = TokenBucket(rate=1.0, capacity=1, clock=clock, name="api")
        limiter.try_acquire("k")
        assert seen == []
        limiter.try_acquire("k")
        with pytest.raises(RateLimitedError):
            limiter.acquire("k", max_wait=0)
    finally:
        unsubscribe(seen.append)
    assert seen == [
        RateLimited("rate_limiter", "api", "k", 1, 1.0),
        RateLimited("rate_limiter", "api", "k", 1, 1.0),
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenBucket(rate=1e-3, capacity=100),
        lambda: SlidingWindow(limit=100, window=3600.0),
        lambda: SlidingWindow(limit=100, window=3600.0, precise=True),
    ],
    ids=["token_bucket", "sliding_counter", "sliding_log"],
)
def test_threads_never_over_admit(make: object) -> None:
    assert admitted_by_threads(make()) == 100  # type: ignore[operator]


@pytest.mark.parametrize("precise", [None, False, True])
async def test_concurrent_tasks_never_over_admit(precise: bool | None) -> None:
    limiter: resilient.TokenBucket | resilient.SlidingWindow = (
        TokenBucket(rate=1e-3, capacity=50)
        if precise is None
        else SlidingWindow(limit=50, window=3600.0, precise=precise)
    )
    assert await admitted_by_tasks(limiter) == 50


def test_one_real_time_smoke_acquire_waits_for_a_token() -> None:
    limiter = TokenBucket(rate=50.0, capacity=1)
    limiter.acquire()
    decision = limiter.acquire(max_wait=1.0)
    assert decision.allowed


# ---------------------------------------------------------------------------------------------
# Configuration.
# ---------------------------------------------------------------------------------------------


def test_config_builds_either_limiter_by_kind() -> None:
    from resilient.config import load_policies

    pipelines = load_policies(
        {
            "api": {"rate_limiter": {"kind": "token_bucket", "rate": 5, "capacity": 10}},
            "search": {
                "rate_limiter": {
                    "kind": "sliding_window",
                    "limit": 100,
                    "window": 60,
                    "precise": True,
                    "max_wait": None,
                }
            },
        }
    )
    (bucket,) = pipelines["api"].policies
    assert isinstance(bucket, TokenBucket)
    assert (bucket.rate, bucket.capacity, bucket.name, bucket.max_wait) == (5.0, 10, "api", 0.0)
    assert isinstance(bucket.store, MemoryStore)
    (window,) = pipelines["search"].policies
    assert isinstance(window, SlidingWindow)
    assert (window.limit, window.window, window.precise, window.max_wait) == (100, 60.0, True, None)


@pytest.mark.parametrize(
    ("section", "loc"),
    [
        ({"kind": "token_bucket", "rate": 0, "capacity": 1}, ("token_bucket", "rate")),
        ({"kind": "token_bucket", "rate": 1, "capacity": 0}, ("token_bucket", "capacity")),
        ({"kind": "sliding_window", "limit": 1, "window": -1}, ("sliding_window", "window")),
        (
            {"kind": "sliding_window", "limit": 1, "window": 1, "rate": 2},
            ("sliding_window", "rate"),
        ),
        ({"kind": "leaky", "rate": 1}, ()),
        (
            {"kind": "token_bucket", "rate": 1, "capacity": 1, "on_error": "x"},
            ("token_bucket", "on_error"),
        ),
    ],
)
def test_config_errors_name_the_field_path(
    section: dict[str, object], loc: tuple[str, ...]
) -> None:
    import pydantic

    from resilient.config import load_policies

    with pytest.raises(pydantic.ValidationError) as info:
        load_policies({"api": {"rate_limiter": section}})
    assert info.value.errors()[0]["loc"] == ("api", "rate_limiter", *loc)


def test_config_with_redis_url_shares_state_through_redis(redis_url: str) -> None:
    from resilient.config import load_policies
    from resilient.stores import RedisStore

    section = {"kind": "token_bucket", "rate": 0.001, "capacity": 1, "redis_url": redis_url}
    first = load_policies({"api": {"rate_limiter": section}})["api"].policies[0]
    second = load_policies({"api": {"rate_limiter": section}})["api"].policies[0]
    assert isinstance(first, TokenBucket)
    assert isinstance(second, TokenBucket)
    assert isinstance(first.store, RedisStore)
    assert first.try_acquire("k")
    assert not second.try_acquire("k")  # same name, same Redis: one limit


def test_a_bad_max_wait_is_refused_before_anything_is_taken() -> None:
    limiter = TokenBucket(rate=1.0, capacity=2, clock=FakeClock())
    with pytest.raises(ValueError, match="max_wait must be >= 0"):
        limiter.acquire("k", max_wait=-5)
    assert limiter.try_acquire("k").remaining == 1  # the full capacity was still there


async def test_a_bad_max_wait_is_refused_before_anything_is_taken_async() -> None:
    limiter = TokenBucket(rate=1.0, capacity=2, clock=FakeClock())
    with pytest.raises(ValueError, match="max_wait must be >= 0"):
        await limiter.aacquire("k", max_wait=-5)
    assert (await limiter.atry_acquire("k")).remaining == 1


async def test_a_subclass_overriding_try_acquire_is_called() -> None:
    seen: list[tuple[str, int]] = []

    class Audited(TokenBucket):
        def try_acquire(self, key: str = "", cost: int = 1) -> Decision:
            seen.append((key, cost))
            return super().try_acquire(key, cost)

        async def atry_acquire(self, key: str = "", cost: int = 1) -> Decision:
            seen.append(("async:" + key, cost))
            return await super().atry_acquire(key, cost)

    limiter = Audited(rate=1.0, capacity=5, clock=FakeClock())
    assert limiter.try_acquire("a", 2)
    assert await limiter.atry_acquire("b")
    assert seen == [("a", 2), ("async:b", 1)]
    assert limiter.try_acquire("a").remaining == 2  # the parent's decision ran


READINGS = [0.0, 123.456, 8_300_356.93, 1e9, 1e12]
LIMITER_KINDS = [
    lambda clock: TokenBucket(rate=3.0, capacity=2, clock=clock),
    lambda clock: TokenBucket(rate=7.0, capacity=1, clock=clock),
    lambda clock: SlidingWindow(limit=2, window=0.7, clock=clock),
    lambda clock: SlidingWindow(limit=2, window=0.7, precise=True, clock=clock),
]


@settings(max_examples=60, deadline=None)
@given(
    start=st.sampled_from(READINGS),
    make=st.sampled_from(LIMITER_KINDS),
    key=st.sampled_from(["", "user:1"]),
    advances=st.lists(st.sampled_from([0.0, 1e-6, 0.1, 0.123457, 1.0]), max_size=6),
)
def test_waiting_exactly_retry_after_always_suffices(
    start: float, make: object, key: str, advances: list[float]
) -> None:
    clock = FakeClock(start)
    limiter = make(clock)  # type: ignore[operator]
    for advance in advances:
        clock.advance(advance)
        limiter.try_acquire(key)
    while limiter.try_acquire(key):
        pass
    denied = limiter.try_acquire(key)
    assert denied.retry_after > 0
    clock.advance(denied.retry_after)
    assert limiter.try_acquire(key), (start, denied)


FULL = {TokenBucket: "capacity", SlidingWindow: "limit"}


@settings(max_examples=80, deadline=None)
@given(
    start=st.sampled_from(READINGS),
    make=st.sampled_from(LIMITER_KINDS),
    key=st.sampled_from(["", "user:1"]),
    advances=st.lists(st.sampled_from([0.0, 1e-6, 0.1, 0.123457, 1.0]), max_size=6),
    exhaust=st.booleans(),
)
def test_waiting_exactly_reset_after_always_brings_the_key_back_to_full(
    start: float, make: object, key: str, advances: list[float], exhaust: bool
) -> None:
    clock = FakeClock(start)
    limiter = make(clock)  # type: ignore[operator]
    full = getattr(limiter, FULL[type(limiter)])
    decision = limiter.try_acquire(key)
    for advance in advances:
        clock.advance(advance)
        decision = limiter.try_acquire(key)
    while exhaust and decision:
        decision = limiter.try_acquire(key)
    assert decision.reset_after > 0
    clock.advance(decision.reset_after)
    again = limiter.try_acquire(key, full)  # the whole quota at once
    assert again, (start, decision)
    assert again.remaining == 0


@pytest.mark.parametrize("start", READINGS)
async def test_acquire_sleeps_once_at_any_clock_reading(start: float) -> None:
    for make in LIMITER_KINDS:
        clock = FakeClock(start)
        limiter = make(clock)
        while limiter.try_acquire():
            pass
        limiter.acquire(max_wait=None)
        assert len(clock.sleeps) == 1
        while limiter.try_acquire():
            pass
        await limiter.aacquire(max_wait=None)
        assert len(clock.sleeps) == 2
