from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Iterator

import anyio
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from resilient import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    DeadlineExceeded,
    Pipeline,
    TimeWindow,
    timeout,
)
from resilient._events import CallRejected, CircuitStateChanged, Event, subscribe, unsubscribe
from resilient.testing import FakeClock


class Boom(Exception):
    pass


class ClientError(Exception):
    pass


def fail() -> None:
    raise Boom


def ok() -> int:
    return 1


def trip(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            breaker.call(fail)


def test_failure_rate_opens_once_minimum_calls_are_in_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", failure_rate=0.5, minimum_calls=4, clock=clock)
    trip(breaker, 3)
    assert breaker.state is CircuitState.CLOSED
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_open_breaker_rejects_with_seconds_until_a_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("pay", minimum_calls=1, open_for=15.0, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.name == "pay"
    assert info.value.retry_after == pytest.approx(10.0)


def test_all_trials_succeeding_closes_with_a_fresh_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=2, open_for=1, half_open_calls=2, clock=clock)
    trip(breaker, 2)
    clock.advance(1)
    assert breaker.call(ok) == 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(ok) == 1
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().calls == 0


def test_a_failed_trial_opens_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=1, open_for=1, half_open_calls=2, clock=clock)
    trip(breaker, 1)
    clock.advance(1)
    breaker.call(ok)
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_slow_calls_trip_the_slow_call_rate() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "b", slow_call_rate=0.5, slow_call_duration=1.0, minimum_calls=2, clock=clock
    )
    breaker.call(clock.sleep, 2.0)
    assert breaker.state is CircuitState.CLOSED
    breaker.call(clock.sleep, 3.0)
    metrics = breaker.metrics()
    assert metrics.state is CircuitState.OPEN
    assert metrics.slow_calls == 2
    assert metrics.slow_call_rate == 1.0


def test_consecutive_failures_trip_the_classic_way() -> None:
    breaker = CircuitBreaker(
        "b", failure_rate=None, consecutive_failures=3, clock=FakeClock(), minimum_calls=100
    )
    trip(breaker, 2)
    breaker.call(ok)
    trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_count_window_forgets_the_oldest_calls() -> None:
    breaker = CircuitBreaker("b", window=CountWindow(4), minimum_calls=4, clock=FakeClock())
    trip(breaker, 1)
    for _ in range(4):
        breaker.call(ok)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (4, 0)


def test_time_window_forgets_calls_older_than_its_length() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "b", window=TimeWindow(10, buckets=10), minimum_calls=3, failure_rate=0.5, clock=clock
    )
    trip(breaker, 2)
    clock.advance(10)
    assert breaker.metrics().calls == 0
    breaker.call(ok)
    breaker.call(ok)
    trip(breaker, 1)  # 1 failure in 3: below the rate; the old failures are gone
    assert breaker.state is CircuitState.CLOSED


def test_backoff_open_for_waits_longer_on_each_reopening() -> None:
    class Doubling:
        def delays(self) -> Iterator[float]:
            delay = 1.0
            while True:
                yield delay
                delay *= 2

    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=1, open_for=Doubling(), clock=clock)
    trip(breaker, 1)
    for expected in (1.0, 2.0, 4.0):
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ok)
        assert info.value.retry_after == expected
        clock.advance(expected)
        trip(breaker, 1)  # the trial fails
    clock.advance(8.0)
    breaker.call(ok)
    trip(breaker, 1)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == 1.0  # closing started the backoff over


def test_ignored_exceptions_and_non_matching_ones_do_not_count_as_failures() -> None:
    breaker = CircuitBreaker(
        "b", minimum_calls=1, failure_on=Boom, ignore=ClientError, clock=FakeClock()
    )
    with pytest.raises(ClientError):
        breaker.call(lambda: (_ for _ in ()).throw(ClientError()))
    assert breaker.metrics().calls == 0
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.state) == (1, 0, CircuitState.CLOSED)


def test_failure_on_predicate_and_failure_result() -> None:
    breaker = CircuitBreaker(
        "b",
        minimum_calls=3,
        failure_rate=0.6,
        failure_on=lambda exc: "bad" in str(exc),
        failure_result=lambda result: result is None,
        clock=FakeClock(),
    )
    with pytest.raises(ValueError, match="fine"):
        breaker.call(lambda: (_ for _ in ()).throw(ValueError("fine")))
    assert breaker.call(lambda: None) is None
    assert breaker.metrics().failures == 1
    with pytest.raises(ValueError, match="bad"):
        breaker.call(lambda: (_ for _ in ()).throw(ValueError("bad")))
    assert breaker.state is CircuitState.OPEN


def test_operator_states() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=1, clock=clock)
    breaker.force_open()
    assert breaker.state is CircuitState.FORCED_OPEN
    clock.advance(1000)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    breaker.disable()
    trip(breaker, 5)
    assert breaker.state is CircuitState.DISABLED
    assert breaker.metrics().calls == 0
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(ok) == 1


def test_state_changes_and_rejections_emit_events() -> None:
    events: list[Event] = []
    subscribe(events.append)
    try:
        clock = FakeClock()
        breaker = CircuitBreaker("ev", minimum_calls=1, open_for=1, clock=clock)
        trip(breaker, 1)
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
        clock.advance(1)
        breaker.call(ok)
    finally:
        unsubscribe(events.append)
    changes = [(e.old, e.new) for e in events if isinstance(e, CircuitStateChanged)]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    rejected = [e for e in events if isinstance(e, CallRejected)]
    assert rejected[0].name == "ev"
    assert rejected[0].retry_after == 1.0


def test_context_manager_counts_the_block() -> None:
    breaker = CircuitBreaker("b", minimum_calls=1, clock=FakeClock())
    with breaker:
        pass
    with pytest.raises(Boom), breaker:
        raise Boom
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pass


def test_keyboard_interrupt_gives_the_trial_slot_back() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=1, open_for=1, clock=clock)
    trip(breaker, 1)
    clock.advance(1)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupt)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(ok) == 1
    assert breaker.state is CircuitState.CLOSED


def test_decorator_keeps_metadata_and_counts() -> None:
    breaker = CircuitBreaker("b", minimum_calls=1, clock=FakeClock())

    @breaker
    def add(x: int, y: int = 1) -> int:
        """Add."""
        return x + y

    assert add(1, y=2) == 3
    assert add.__name__ == "add"
    assert breaker.metrics().calls == 1


async def test_async_call_and_async_with() -> None:
    breaker = CircuitBreaker("b", minimum_calls=2, clock=FakeClock())

    @breaker
    async def work() -> int:
        await anyio.lowlevel.checkpoint()
        return 2

    assert await work() == 2
    async with breaker:
        await anyio.lowlevel.checkpoint()
    assert breaker.metrics().calls == 2


async def test_cancellation_counts_neither_way_and_releases_the_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=1, open_for=1, clock=clock)
    trip(breaker, 1)
    clock.advance(1)
    with anyio.move_on_after(0.01):
        await breaker.acall(anyio.sleep, 10)
    assert breaker.state is CircuitState.HALF_OPEN
    await breaker.acall(anyio.lowlevel.checkpoint)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": 0.0}, "failure_rate"),
        ({"failure_rate": -0.1}, "failure_rate"),
        ({"slow_call_rate": 2.0, "slow_call_duration": 1.0}, "slow_call_rate"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"half_open_calls": 0}, "half_open_calls"),
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"open_for": -1.0}, "open_for"),
        ({"slow_call_rate": 0.5}, "slow_call_duration"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        CircuitBreaker("b", **kwargs)


def test_bad_window_arguments_raise_value_error_naming_them() -> None:
    with pytest.raises(ValueError, match="size"):
        CountWindow(0)
    with pytest.raises(ValueError, match="seconds"):
        TimeWindow(0)
    with pytest.raises(ValueError, match="buckets"):
        TimeWindow(10, buckets=0)


# ---------------------------------------------------------------------------------------------
# Exactly half_open_calls trials under contention


def _half_open(half_open_calls: int) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "b", minimum_calls=1, open_for=1, half_open_calls=half_open_calls, clock=clock
    )
    trip(breaker, 1)
    clock.advance(1)
    return breaker, clock


@pytest.mark.parametrize("half_open_calls", [1, 3])
def test_threads_hitting_a_half_open_breaker_run_exactly_half_open_calls_trials(
    half_open_calls: int,
) -> None:
    breaker, _ = _half_open(half_open_calls)
    barrier = threading.Barrier(16)
    release = threading.Event()
    ran: list[int] = []
    rejected: list[int] = []

    def trial() -> None:
        ran.append(1)
        release.wait(5)

    def worker() -> None:
        barrier.wait()
        try:
            breaker.call(trial)
        except CircuitOpenError:
            rejected.append(1)
        if len(rejected) == 16 - half_open_calls:
            release.set()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(ran) == half_open_calls
    assert len(rejected) == 16 - half_open_calls
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("half_open_calls", [1, 4])
async def test_tasks_hitting_a_half_open_breaker_run_exactly_half_open_calls_trials(
    half_open_calls: int,
) -> None:
    breaker, _ = _half_open(half_open_calls)
    ran = 0
    rejected = 0
    release = anyio.Event()

    async def trial() -> None:
        nonlocal ran
        ran += 1
        await release.wait()

    async def worker() -> None:
        nonlocal rejected
        try:
            await breaker.acall(trial)
        except CircuitOpenError:
            rejected += 1
            if rejected == 200 - half_open_calls:
                release.set()

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(worker)
    assert ran == half_open_calls
    assert rejected == 200 - half_open_calls
    assert breaker.state is CircuitState.CLOSED


async def test_async_with_entered_by_many_tasks_keeps_each_entry_apart() -> None:
    breaker = CircuitBreaker("b", minimum_calls=1, failure_rate=0.5, clock=FakeClock())

    async def worker(i: int) -> None:
        try:
            async with breaker:
                await anyio.sleep(0.001 * (i % 3))
                if i == 0:
                    raise Boom
        except Boom:
            pass

    async with anyio.create_task_group() as tg:
        for i in range(1, 50):
            tg.start_soon(worker, i)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (49, 0)


def test_asyncio_cancelled_error_is_not_a_failure() -> None:
    breaker = CircuitBreaker("b", minimum_calls=1, clock=FakeClock())

    def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        breaker.call(cancelled)
    assert breaker.metrics().calls == 0


# ---------------------------------------------------------------------------------------------
# Stateful test against a reference model


class Model:
    """A direct transcription of the rules, with a list for the window."""

    def __init__(self, size: int, minimum: int, rate: float, slow_rate: float, trials: int):
        self.size, self.minimum, self.rate, self.slow_rate = size, minimum, rate, slow_rate
        self.trials = trials
        self.state = "closed"
        self.window: deque[tuple[bool, bool]] = deque(maxlen=size)
        self.open_until = 0.0
        self.passed = 0

    def poll(self, now: float) -> str:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
            self.passed = 0
        return self.state

    def allowed(self, now: float) -> bool:
        state = self.poll(now)
        return state in ("closed", "half_open", "disabled")

    def record(self, failed: bool, slow: bool, now: float, open_for: float) -> None:
        if self.state == "closed":
            self.window.append((failed, slow))
            calls = len(self.window)
            failures = sum(f for f, _ in self.window)
            slows = sum(s for _, s in self.window)
            if calls >= self.minimum and (
                failures / calls >= self.rate or slows / calls >= self.slow_rate
            ):
                self.state = "open"
                self.open_until = now + open_for
        elif self.state == "half_open":
            if failed or slow:
                self.state = "open"
                self.open_until = now + open_for
            else:
                self.passed += 1
                if self.passed == self.trials:
                    self.state = "closed"
                    self.window.clear()


OPEN_FOR = 5.0
SLOW = 1.0


class BreakerMachine(RuleBasedStateMachine):
    @initialize(
        size=st.integers(1, 8),
        minimum=st.integers(1, 8),
        rate=st.sampled_from([0.25, 0.5, 1.0]),
        slow_rate=st.sampled_from([0.5, 1.0]),
        trials=st.integers(1, 3),
    )
    def setup(self, size: int, minimum: int, rate: float, slow_rate: float, trials: int) -> None:
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "model",
            window=CountWindow(size),
            minimum_calls=minimum,
            failure_rate=rate,
            slow_call_rate=slow_rate,
            slow_call_duration=SLOW,
            open_for=OPEN_FOR,
            half_open_calls=trials,
            clock=self.clock,
        )
        # A count window never holds more than its size: the breaker caps the minimum there.
        self.model = Model(size, min(minimum, size), rate, slow_rate, trials)

    @rule(failed=st.booleans(), slow=st.booleans())
    def call(self, failed: bool, slow: bool) -> None:
        now = self.clock.monotonic()
        allowed = self.model.allowed(now)

        def work() -> None:
            if slow:
                self.clock.advance(SLOW)
            if failed:
                raise Boom

        try:
            self.breaker.call(work)
        except CircuitOpenError as exc:
            assert not allowed
            if self.model.state == "open":
                assert exc.retry_after == pytest.approx(self.model.open_until - now)  # noqa: PT017
            return
        except Boom:
            pass
        assert allowed
        if self.model.state != "disabled":
            self.model.record(failed, slow, self.clock.monotonic(), OPEN_FOR)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 5.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def force_open(self) -> None:
        self.breaker.force_open()
        self.model.state = "forced_open"

    @rule()
    def disable(self) -> None:
        self.breaker.disable()
        self.model.state = "disabled"

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.state = "closed"
        self.model.window.clear()

    @invariant()
    def same_state_and_counts(self) -> None:
        if not hasattr(self, "model"):
            return
        expected = self.model.poll(self.clock.monotonic())
        metrics = self.breaker.metrics()
        assert metrics.state.value == expected
        if expected == "closed":
            assert metrics.calls == len(self.model.window)
            assert metrics.failures == sum(f for f, _ in self.model.window)
            assert metrics.slow_calls == sum(s for _, s in self.model.window)


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_breaker_matches_the_reference_model = BreakerMachine.TestCase


def test_rejections_by_inner_policies_count_neither_way() -> None:
    from resilient import Bulkhead, BulkheadFullError, Pipeline, RateLimitedError

    breaker = CircuitBreaker("b", minimum_calls=1, consecutive_failures=1, clock=FakeClock())
    bulkhead = Bulkhead(1)
    guarded = Pipeline(breaker, bulkhead)
    with bulkhead, pytest.raises(BulkheadFullError):  # the only slot is taken
        guarded.call(lambda: "never")
    with pytest.raises(RateLimitedError):
        breaker.call(lambda: (_ for _ in ()).throw(RateLimitedError("api", 1.0)))
    assert breaker.metrics().calls == 0
    assert breaker.state is CircuitState.CLOSED
    assert guarded.call(lambda: "ok") == "ok"
    assert breaker.metrics().calls == 1


def test_a_predicate_that_raises_propagates_and_gives_the_trial_slot_back() -> None:
    clock = FakeClock()

    def judge(result: object) -> bool:
        if result == "weird":
            raise ZeroDivisionError("bug in the predicate")
        return False

    breaker = CircuitBreaker(
        "b",
        consecutive_failures=1,
        failure_rate=None,
        open_for=1.0,
        failure_result=judge,
        failure_on=lambda exc: 1 / 0 if isinstance(exc, KeyError) else True,  # type: ignore[arg-type, return-value]
        clock=clock,
    )
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    clock.advance(1.0)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: "weird")  # the only trial: counted neither way, slot returned
    with pytest.raises(ZeroDivisionError) as raised:
        breaker.call(lambda: {}["missing"])  # the same for a predicate on exceptions
    assert isinstance(raised.value.__context__, KeyError)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "fine") == "fine"  # a trial slot is still there
    assert breaker.state is CircuitState.CLOSED


def test_minimum_calls_is_capped_at_the_size_of_a_count_window() -> None:
    breaker = CircuitBreaker("b", window=CountWindow(4), clock=FakeClock())  # minimum_calls=10
    for _ in range(4):
        with pytest.raises(Boom):
            breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("trial", [False, True])
def test_the_open_period_starts_when_the_failure_is_seen_not_when_the_call_began(
    trial: bool,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", consecutive_failures=1, open_for=1.0, clock=clock)

    def slow_failure() -> None:
        clock.advance(5.0)
        raise Boom

    if trial:
        with pytest.raises(Boom):
            breaker.call(lambda: (_ for _ in ()).throw(Boom()))
        clock.advance(1.0)
    with pytest.raises(Boom):
        breaker.call(slow_failure)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as rejected:
        breaker.call(lambda: "never")
    assert rejected.value.retry_after == 1.0


def test_a_half_open_rejection_says_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", minimum_calls=1, open_for=1, half_open_calls=1, clock=clock)
    trip(breaker, 1)
    with pytest.raises(CircuitOpenError, match="'b' is open"):
        breaker.call(ok)
    clock.advance(1)

    def trial() -> None:
        with pytest.raises(CircuitOpenError, match="'b' is half-open") as caught:
            breaker.call(ok)  # the only trial slot is this call's
        assert "is open" not in str(caught.value)

    breaker.call(trial)


def test_an_empty_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        CircuitBreaker("")


@pytest.mark.parametrize("seconds", [1e-320, 1e-323, 5e-7])
def test_a_time_window_under_a_microsecond_is_a_value_error(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds must be >= 1e-06"):
        TimeWindow(seconds)


def test_the_shortest_time_window_works_at_any_clock_reading() -> None:
    for start in (0.0, 123.456, 1e9, 1e12):
        clock = FakeClock(start)
        breaker = CircuitBreaker("b", window=TimeWindow(1e-6), minimum_calls=1, clock=clock)
        assert breaker.call(ok) == 1


class BadDelays:
    def __init__(self, *delays: float) -> None:
        self._delays = delays

    def delays(self) -> Iterator[float]:
        return iter(self._delays)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_an_open_for_backoff_yielding_a_bad_delay_is_a_value_error(bad: float) -> None:
    breaker = CircuitBreaker("b", minimum_calls=1, open_for=BadDelays(bad), clock=FakeClock())
    with pytest.raises(ValueError, match="open_for must yield delays >= 0 and finite"):
        trip(breaker, 1)
    assert breaker.state is CircuitState.CLOSED  # left as it was, not open for NaN seconds


async def hang_on(clock: FakeClock) -> None:
    """A dependency that never answers; each loop step moves the fake clock on 10 ms."""
    while True:
        await clock.asleep(0.01)


async def test_a_timeout_firing_inside_the_breaker_counts_as_a_failure_and_a_slow_call() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("hangs", minimum_calls=5, open_for=10, clock=clock)
    guarded = Pipeline(timeout(0.05, clock=clock), breaker)
    for _ in range(5):
        with pytest.raises(DeadlineExceeded):
            await guarded.acall(hang_on, clock)
    metrics = breaker.metrics()
    assert (metrics.state, metrics.calls, metrics.failures, metrics.slow_calls) == (
        CircuitState.OPEN,
        5,
        5,
        5,
    )
    with pytest.raises(CircuitOpenError):
        await guarded.acall(hang_on, clock)


async def test_a_timed_out_trial_opens_the_breaker_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("trial", consecutive_failures=1, open_for=1, clock=clock)
    trip(breaker, 1)
    clock.advance(1)

    async def trial() -> None:
        async with timeout(0.05, clock=clock), breaker:
            await hang_on(clock)

    with pytest.raises(DeadlineExceeded):
        await trial()
    assert breaker.state is CircuitState.OPEN


async def test_a_cancellation_with_the_deadline_still_ahead_stays_neutral() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("neutral", minimum_calls=1, clock=clock)
    async with timeout(60.0, clock=clock):
        with anyio.move_on_after(0.01):
            await breaker.acall(anyio.sleep_forever)
    assert breaker.metrics().calls == 0


def test_deadline_exceeded_raised_inside_a_sync_call_counts_as_a_slow_failure() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "sync", minimum_calls=1, slow_call_rate=1.0, slow_call_duration=30.0, clock=clock
    )

    def late() -> None:
        clock.advance(1.0)
        with timeout(0.5, clock=clock):  # the deadline in scope has already passed
            pass

    with pytest.raises(DeadlineExceeded), timeout(0.5, clock=clock):
        breaker.call(late)
    metrics = breaker.metrics()
    assert (metrics.state, metrics.failures, metrics.slow_calls) == (CircuitState.OPEN, 1, 1)


def test_on_state_change_hears_every_transition_of_its_breaker_only() -> None:
    clock = FakeClock()
    heard: list[CircuitStateChanged] = []
    breaker = CircuitBreaker(
        "listened", consecutive_failures=1, open_for=1, clock=clock, on_state_change=heard.append
    )
    other = CircuitBreaker("other", consecutive_failures=1, clock=clock)
    trip(other, 1)
    trip(breaker, 1)
    clock.advance(1)
    breaker.call(ok)
    breaker.force_open()
    assert [(e.name, e.old, e.new) for e in heard] == [
        ("listened", "closed", "open"),
        ("listened", "open", "half_open"),
        ("listened", "half_open", "closed"),
        ("listened", "closed", "forced_open"),
    ]


def test_an_on_state_change_that_raises_never_breaks_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def broken(event: CircuitStateChanged) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker("broken", consecutive_failures=1, on_state_change=broken)
    trip(breaker, 1)  # raises Boom, not the listener's RuntimeError
    assert breaker.state is CircuitState.OPEN
    assert len(reported) == 1


def test_on_state_change_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_state_change"):
        CircuitBreaker("x", on_state_change=42)  # type: ignore[arg-type]
