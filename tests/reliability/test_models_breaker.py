"""The circuit breaker against a reference model, step by step (hypothesis state machines).

The model below is written from DESIGN §2.3 and the breaker's docstring, independently of the
implementation: a list of recorded outcomes for the window (count or time), the state, the
trial slots of HALF_OPEN and the operator states. Calls are held open across steps (a
``with breaker:`` block per call, kept in a generator), so several calls overlap, outcomes
arrive out of order, late outcomes of an earlier period are dropped, and HALF_OPEN is probed by
concurrent trials. Time comes from a `FakeClock` started at 0 and at 1e9.

The same machine runs against a `RedisStore` (the script's clock pinned to the fake clock).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from resilient import CircuitBreaker, CircuitOpenError, CircuitState, CountWindow, TimeWindow
from resilient.stores import RedisStore
from resilient.testing import FakeClock

from ._models_support import Boom, Holder, Neutral, bounded, record

OPEN_FOR = 4.0
SLOW = 1.0
STEPS = [0.25, 0.5, 1.0, 2.0, 4.0, 9.0]
EPOCH_MS = 1_700_000_000_000
FRESH = itertools.count()


class Model:
    """What the breaker should do, as plain data."""

    def __init__(self, cfg: dict[str, Any], now: float) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.period = 0  # a new number for every CLOSED or HALF_OPEN period
        self.window: list[tuple[float, bool, bool]] = []  # (time, failed, slow)
        self.consecutive = 0
        self.open_until = now
        self.issued = 0
        self.passed = 0

    # -- the window ---------------------------------------------------------------------------

    def counted(self, now: float) -> list[tuple[float, bool, bool]]:
        kind, size = self.cfg["window"]
        if kind == "count":
            return self.window[-size:]
        width = size / self.cfg["buckets"]
        newest = int(now // width)
        return [o for o in self.window if int(o[0] // width) > newest - self.cfg["buckets"]]

    def tripped(self, now: float) -> bool:
        cfg = self.cfg
        if cfg["consecutive"] is not None and self.consecutive >= cfg["consecutive"]:
            return True
        counted = self.counted(now)
        calls = len(counted)
        minimum = cfg["minimum"]
        if cfg["window"][0] == "count":
            minimum = min(minimum, cfg["window"][1])
        if calls < minimum:
            return False
        failures = sum(1 for o in counted if o[1])
        slow = sum(1 for o in counted if o[2])
        if cfg["rate"] is not None and failures / calls >= cfg["rate"]:
            return True
        return cfg["slow_rate"] is not None and slow / calls >= cfg["slow_rate"]

    # -- transitions --------------------------------------------------------------------------

    def open(self, now: float) -> None:
        self.state = "open"
        self.open_until = now + OPEN_FOR
        self.period += 1

    def close(self) -> None:
        self.state = "closed"
        self.window = []
        self.consecutive = 0
        self.period += 1

    def poll(self, now: float) -> str:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
            self.period += 1
            self.issued = self.passed = 0
        return self.state

    def acquire(self, now: float) -> tuple[str, int, float] | None:
        """``(kind, period, 0)`` for a permit, or None and the retry_after in ``self.refusal``."""
        state = self.poll(now)
        if state == "closed":
            return ("closed", self.period, 0.0)
        if state == "disabled":
            return ("pass", -1, 0.0)
        if state == "forced_open":
            self.refusal = OPEN_FOR
            return None
        if state == "open":
            self.refusal = self.open_until - now
            return None
        if self.issued < self.cfg["trials"]:
            self.issued += 1
            return ("trial", self.period, 0.0)
        self.refusal = 0.0
        return None

    def record(self, permit: tuple[str, int, float], outcome: str, slow: bool, now: float) -> None:
        kind, period, _ = permit
        if kind == "pass" or period != self.period:
            return  # disabled, or a call of an earlier period
        if kind == "trial":
            if self.state != "half_open":
                return
            if outcome == "neutral":
                self.issued -= 1
            elif outcome == "failure" or (slow and self.cfg["slow_rate"] is not None):
                self.open(now)
            else:
                self.passed += 1
                if self.passed >= self.cfg["trials"]:
                    self.close()
            return
        if self.state != "closed" or outcome == "neutral":
            return
        failed = outcome == "failure"
        self.window.append((now, failed, slow))
        self.consecutive = self.consecutive + 1 if failed else 0
        if self.tripped(now):
            self.open(now)

    def force(self, state: str) -> None:
        if state == "closed":
            self.close()
            return
        if state != self.state:
            self.period += 1
        self.state = state


settings_strategy = st.fixed_dictionaries(
    {
        "window": st.one_of(
            st.tuples(st.just("count"), st.integers(1, 6)),
            st.tuples(st.just("time"), st.sampled_from([2, 4, 8])),
        ),
        "buckets": st.sampled_from([1, 2, 4]),
        "minimum": st.integers(1, 5),
        "rate": st.sampled_from([None, 0.25, 0.5, 1.0]),
        "slow_rate": st.sampled_from([None, 0.5, 1.0]),
        "consecutive": st.sampled_from([None, 1, 3]),
        "trials": st.integers(1, 3),
        "start": st.sampled_from([0.0, 1e9]),
    }
).filter(lambda c: c["rate"] is not None or c["slow_rate"] is not None or c["consecutive"])


class BreakerMachine(RuleBasedStateMachine):
    """Calls that overlap, time that moves, operators that force states: breaker vs model."""

    redis: Any = None  # a redis.Redis client: the breaker lives in a RedisStore
    steps = 0

    @initialize(cfg=settings_strategy)
    def setup(self, cfg: dict[str, Any]) -> None:
        self.clock = FakeClock(cfg["start"])
        kind, size = cfg["window"]
        window = CountWindow(size) if kind == "count" else TimeWindow(size, cfg["buckets"])
        store = None if self.redis is None else RedisStore(self.redis)
        self.breaker = CircuitBreaker(
            f"model-{next(FRESH)}",
            window=window,
            minimum_calls=cfg["minimum"],
            failure_rate=cfg["rate"],
            slow_call_rate=cfg["slow_rate"],
            slow_call_duration=SLOW if cfg["slow_rate"] is not None else None,
            consecutive_failures=cfg["consecutive"],
            open_for=OPEN_FOR,
            half_open_calls=cfg["trials"],
            clock=self.clock,
            store=store,
        )
        if store is not None:
            clock = self.clock
            self.breaker._backend.pin = lambda: EPOCH_MS + round(clock.monotonic() * 1000)  # type: ignore[attr-defined]
        self.model = Model(cfg, self.clock.monotonic())
        self.open_calls: list[tuple[Holder, tuple[str, int, float], float]] = []
        self.calls = 0

    def _start(self) -> tuple[Holder, tuple[str, int, float], float] | None:
        now = self.clock.monotonic()
        expected = self.model.acquire(now)
        self.calls += 1
        if expected is None:
            with pytest.raises(CircuitOpenError) as info:
                Holder(self.breaker)
            assert info.value.retry_after == pytest.approx(max(0.0, self.model.refusal), abs=1e-3)
            return None
        holder = Holder(self.breaker)
        return holder, expected, now

    def _finish(self, call: tuple[Holder, tuple[str, int, float], float], outcome: str) -> None:
        holder, permit, started = call
        now = self.clock.monotonic()
        error = {"success": None, "failure": Boom(), "neutral": Neutral()}[outcome]
        holder.finish(error)
        slow = self.model.cfg["slow_rate"] is not None and now - started >= SLOW
        self.model.record(permit, outcome, slow, now)

    @rule(outcome=st.sampled_from(["success", "failure", "failure", "neutral"]))
    def call(self, outcome: str) -> None:
        """A call that starts and ends at once."""
        started = self._start()
        if started is not None:
            self._finish(started, outcome)

    @rule()
    def begin(self) -> None:
        """A call that stays open until `end`."""
        if len(self.open_calls) < 4:
            started = self._start()
            if started is not None:
                self.open_calls.append(started)

    @precondition(lambda self: bool(self.open_calls))
    @rule(index=st.integers(0, 3), outcome=st.sampled_from(["success", "failure", "neutral"]))
    def end(self, index: int, outcome: str) -> None:
        self._finish(self.open_calls.pop(index % len(self.open_calls)), outcome)

    @precondition(lambda self: self.redis is None or not self.open_calls)
    @rule(seconds=st.sampled_from(STEPS))
    def advance(self, seconds: float) -> None:
        # With Redis, calls do not stay open while time passes: the script's trial leases
        # (10 s at least) are not part of the model.
        self.clock.advance(seconds)

    @rule(state=st.sampled_from(["forced_open", "disabled", "closed"]))
    def operator(self, state: str) -> None:
        {
            "forced_open": self.breaker.force_open,
            "disabled": self.breaker.disable,
            "closed": self.breaker.reset,
        }[state]()
        self.model.force(state)

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        BreakerMachine.steps += 1
        now = self.clock.monotonic()
        assert self.breaker.state is CircuitState(self.model.poll(now))
        if self.model.state == "closed":
            metrics = self.breaker.metrics()
            counted = self.model.counted(now)
            assert metrics.calls == len(counted)
            assert metrics.failures == sum(1 for o in counted if o[1])
            assert metrics.consecutive_failures == self.model.consecutive

    def teardown(self) -> None:
        # Whatever is still open ends now (a permit is never left behind).
        for call in self.open_calls:
            self._finish(call, "success")
        BreakerMachine.calls_total = getattr(BreakerMachine, "calls_total", 0) + getattr(
            self, "calls", 0
        )


def test_breaker_matches_its_model_in_memory() -> None:
    BreakerMachine.redis = None
    BreakerMachine.steps = BreakerMachine.calls_total = 0
    run_state_machine_as_test(BreakerMachine, settings=bounded(60, 40))
    record(
        "test_breaker_matches_its_model_in_memory",
        "breaker states, windows, half-open trials, operator states",
        steps=BreakerMachine.steps,
        calls=BreakerMachine.calls_total,
    )


def test_breaker_matches_its_model_in_redis(redis_client: Any) -> None:
    BreakerMachine.redis = redis_client
    BreakerMachine.steps = BreakerMachine.calls_total = 0
    try:
        run_state_machine_as_test(BreakerMachine, settings=bounded(25, 30))
    finally:
        BreakerMachine.redis = None
    record(
        "test_breaker_matches_its_model_in_redis",
        "breaker states, windows, half-open trials, operator states (RedisStore)",
        steps=BreakerMachine.steps,
        calls=BreakerMachine.calls_total,
    )
