"""The rate limiters against reference models, step by step (hypothesis state machines).

The models are written from DESIGN §2.5 in their textbook form, not the implementation's:

- `TokenBucket`: a bucket of (fractional) tokens refilled continuously at one token per
  emission interval, capped at the capacity; a cost is granted when that many tokens are there
  (the GCRA the limiter runs is the same algorithm written with one timestamp).
- ``SlidingWindow(precise=True)``: the list of every granted unit's time; a cost is granted when
  the units of the last ``window`` plus the cost stay within the limit.
- ``SlidingWindow(precise=False)``: counts per fixed slot, the previous slot weighted by how much
  of it the rolling window still covers, in exact fractions.

Each decision is compared field by field: ``allowed`` and ``remaining`` exactly, and
``retry_after`` / ``reset_after`` by what they promise: the model grants the cost after
``retry_after`` and not one tick earlier, and the key is back to full after ``reset_after`` and
not one tick earlier. ``acquire`` (waiting on the fake clock) is checked too. Time is a
`FakeClock` started at 0 and at 1e9 (memory), or the Redis script's pinned clock.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from resilient import RateLimitedError, SlidingWindow, TokenBucket
from resilient.stores import RedisStore
from resilient.testing import FakeClock

from ._models_support import bounded, record

TICKS = 1_000_000
KEYS = ["", "a", "user:42", "{not verbatim} key"]
FRESH = itertools.count()


class BucketModel:
    def __init__(self, interval: int, capacity: int) -> None:
        self.interval, self.capacity = interval, capacity
        self.keys: dict[str, tuple[Fraction, int]] = {}

    def tokens(self, key: str, now: int) -> Fraction:
        tokens, last = self.keys.get(key, (Fraction(self.capacity), now))
        return min(Fraction(self.capacity), tokens + Fraction(now - last, self.interval))

    def allows(self, key: str, cost: int, now: int) -> bool:
        return self.tokens(key, now) >= cost

    def full(self, key: str, now: int) -> bool:
        return self.tokens(key, now) == self.capacity

    def decide(self, key: str, cost: int, now: int) -> tuple[bool, int]:
        tokens = self.tokens(key, now)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self.keys[key] = (tokens, now)
        return allowed, math.floor(tokens)


class LogModel:
    def __init__(self, window: int, limit: int) -> None:
        self.window, self.limit = window, limit
        self.keys: dict[str, list[int]] = {}

    def count(self, key: str, now: int) -> int:
        return sum(1 for t in self.keys.get(key, []) if t > now - self.window)

    def allows(self, key: str, cost: int, now: int) -> bool:
        return self.count(key, now) + cost <= self.limit

    def full(self, key: str, now: int) -> bool:
        return self.count(key, now) == 0

    def decide(self, key: str, cost: int, now: int) -> tuple[bool, int]:
        count = self.count(key, now)
        if count + cost <= self.limit:
            self.keys.setdefault(key, []).extend([now] * cost)
            return True, self.limit - count - cost
        return False, self.limit - count


class CounterModel:
    def __init__(self, window: int, limit: int) -> None:
        self.window, self.limit = window, limit
        self.slots: dict[tuple[str, int], int] = {}

    def estimate(self, key: str, now: int) -> Fraction:
        slot = now // self.window
        left = self.window - (now - slot * self.window)
        previous = self.slots.get((key, slot - 1), 0)
        current = self.slots.get((key, slot), 0)
        return previous * Fraction(left, self.window) + current

    def allows(self, key: str, cost: int, now: int) -> bool:
        return self.estimate(key, now) + cost <= self.limit

    def full(self, key: str, now: int) -> bool:
        return self.estimate(key, now) == 0

    def decide(self, key: str, cost: int, now: int) -> tuple[bool, int]:
        allowed = self.allows(key, cost, now)
        if allowed:
            slot = (key, now // self.window)
            self.slots[slot] = self.slots.get(slot, 0) + cost
        return allowed, max(0, math.floor(self.limit - self.estimate(key, now)))


class LimiterMachine(RuleBasedStateMachine):
    """try_acquire / acquire on a few keys while time moves: limiter vs model."""

    redis: Any = None
    decisions = 0

    @initialize(
        algorithm=st.sampled_from(["gcra", "sliding_log", "sliding_counter"]),
        limit=st.integers(1, 6),
        period=st.sampled_from([5.0, 7.5, 30.0]),
        start=st.sampled_from([0.0, 1e9]),
    )
    def setup(self, algorithm: str, limit: int, period: float, start: float) -> None:
        self.clock = FakeClock(start)
        store = None if self.redis is None else RedisStore(self.redis)
        name = f"model-{next(FRESH)}"
        options: dict[str, Any] = {"clock": self.clock, "store": store, "name": name}
        self.limit = limit
        if algorithm == "gcra":
            rate = limit / period
            self.limiter: Any = TokenBucket(rate, limit, **options)
            self.model: Any = BucketModel(round(TICKS / rate), limit)
        else:
            precise = algorithm == "sliding_log"
            self.limiter = SlidingWindow(limit, period, precise=precise, **options)
            model = LogModel if precise else CounterModel
            self.model = model(round(period * TICKS), limit)
        # Redis: the script's clock is pinned (a test hook), from an epoch in microseconds.
        self.epoch = 1_700_000_000 * TICKS if self.redis is not None else 0

    def now(self) -> int:
        return self.epoch + round(self.clock.monotonic() * TICKS)

    def decide(self, key: str, cost: int) -> Any:
        LimiterMachine.decisions += 1
        if self.redis is None:
            return self.limiter.try_acquire(key, cost)
        return self.limiter._backend.decide(key, cost, self.now())

    def check(self, decision: Any, key: str, cost: int, now: int) -> None:
        model = self.model
        allows_later = model.allows  # before the model records this decision
        allowed, remaining = model.decide(key, cost, now)
        assert decision.allowed is allowed
        assert decision.limit == self.limit
        assert decision.remaining == remaining
        retry = math.ceil(decision.retry_after * TICKS - 1e-3)
        reset = math.ceil(decision.reset_after * TICKS - 1e-3)
        if allowed:
            assert decision.retry_after == 0.0
        else:
            # The cost is granted after retry_after, and not one tick earlier.
            assert allows_later(key, cost, now + retry)
            assert retry >= 1
            assert not allows_later(key, cost, now + retry - 1)
        # The key is back to full after reset_after, and not one tick earlier.
        assert model.full(key, now + reset)
        assert reset == 0 or not model.full(key, now + reset - 1)

    @rule(key=st.sampled_from(KEYS), cost=st.integers(1, 6))
    def try_acquire(self, key: str, cost: int) -> None:
        cost = 1 + (cost - 1) % self.limit  # every cost from 1 to the limit
        now = self.now()
        self.check(self.decide(key, cost), key, cost, now)

    @rule(key=st.sampled_from(KEYS), excess=st.integers(1, 3))
    def too_costly(self, key: str, excess: int) -> None:
        with pytest.raises(ValueError, match="cost"):
            self.limiter.try_acquire(key, self.limit + excess)

    @rule(ticks=st.sampled_from([1, 999, 250_000, 1_000_000, 2_500_000, 7_500_000, 31_000_000]))
    def advance(self, ticks: int) -> None:
        self.clock.advance(ticks / TICKS)

    @precondition(lambda self: self.redis is None)
    @rule(key=st.sampled_from(KEYS), max_wait=st.sampled_from([0.0, 0.5, 3.0, 40.0]))
    def acquire(self, key: str, max_wait: float) -> None:
        now = self.now()
        model = self.model
        wait = 0
        while not model.allows(key, 1, now + wait):  # the first tick the model grants
            wait += max(1, wait)
        low, high = wait // 2, wait
        while low + 1 < high:
            middle = (low + high) // 2
            if model.allows(key, 1, now + middle):
                high = middle
            else:
                low = middle
        wait = 0 if model.allows(key, 1, now) else high
        if abs(wait / TICKS - max_wait) < 1e-5:
            return  # at the boundary the float comparison may go either way
        LimiterMachine.decisions += 1
        if wait / TICKS > max_wait:
            with pytest.raises(RateLimitedError):
                self.limiter.acquire(key, 1, max_wait)
            assert self.now() == now  # refused without sleeping
            return
        decision = self.limiter.acquire(key, 1, max_wait)
        assert decision.allowed
        granted = self.now()
        assert now + wait <= granted <= now + wait + 2  # slept just as long as needed
        allowed, remaining = model.decide(key, 1, granted)
        assert allowed
        assert decision.remaining == remaining

    @rule(key=st.integers() | st.binary(max_size=3) | st.none())
    def bad_key(self, key: object) -> None:
        with pytest.raises(TypeError, match="key"):
            self.limiter.try_acquire(key, 1)


def test_limiters_match_their_models_in_memory(gcra_impl: str) -> None:
    """Once with the C token bucket of the memory store, once with the pure Python one."""
    LimiterMachine.redis = None
    LimiterMachine.decisions = 0
    run_state_machine_as_test(LimiterMachine, settings=bounded(50, 40))
    record(
        "test_limiters_match_their_models_in_memory",
        "token bucket, sliding log and sliding counter decisions (MemoryStore)",
        decisions=LimiterMachine.decisions,
    )


def test_limiters_match_their_models_in_redis(redis_client: Any) -> None:
    LimiterMachine.redis = redis_client
    LimiterMachine.decisions = 0
    try:
        run_state_machine_as_test(LimiterMachine, settings=bounded(60, 40))
    finally:
        LimiterMachine.redis = None
    record(
        "test_limiters_match_their_models_in_redis",
        "token bucket, sliding log and sliding counter decisions (RedisStore)",
        decisions=LimiterMachine.decisions,
    )
