from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Iterator

import anyio
import pytest

import resilient
from resilient import (
    Backoff,
    CircuitOpenError,
    DeadlineExceeded,
    Pipeline,
    RateLimitedError,
    Retry,
    RetryBudget,
    retry,
)
from resilient.instrumentation import (
    CallCompleted,
    Event,
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
    subscribe,
    unsubscribe,
)
from resilient.testing import FakeClock, no_waiting

# Every test runs on the C success path of a decorated function and on the Python one.
pytestmark = pytest.mark.usefixtures("retry_impl")

NO_JITTER = Backoff.exponential(1.0, 100.0, jitter="none")


@pytest.fixture
def events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    subscribe(seen.append)
    yield seen
    unsubscribe(seen.append)


class Flaky:
    """Raises the given exceptions in turn, then returns ``value``."""

    def __init__(self, *errors: BaseException, value: object = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value

    async def acall(self) -> object:
        await anyio.lowlevel.checkpoint()
        return self()


# -- attempts and filtering ----------------------------------------------------------------------


def test_retry_succeeds_after_transient_failures() -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError(), ConnectionError())
    assert retry(attempts=3, backoff=NO_JITTER, clock=clock)(flaky)() == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == [1.0, 2.0]


def test_retry_reraises_last_exception_unchanged() -> None:
    errors = [ConnectionError(i) for i in range(3)]
    flaky = Flaky(*errors)
    wrapped = retry(attempts=3, clock=FakeClock())(flaky)
    with pytest.raises(ConnectionError) as info:
        wrapped()
    assert info.value is errors[-1]
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    assert flaky.calls == 3


def test_attempts_counts_the_first_call() -> None:
    flaky = Flaky(*[ValueError()] * 10)
    with pytest.raises(ValueError):
        Retry(attempts=1, clock=FakeClock()).call(flaky)
    assert flaky.calls == 1
    flaky = Flaky(*[ValueError()] * 10)
    with pytest.raises(ValueError):
        Retry(attempts=5, clock=FakeClock()).call(flaky)
    assert flaky.calls == 5


def test_exceptions_not_listed_in_on_are_raised_at_once() -> None:
    flaky = Flaky(KeyError("x"))
    with pytest.raises(KeyError):
        retry(on=(ConnectionError, TimeoutError), clock=FakeClock())(flaky)()
    assert flaky.calls == 1


def test_on_accepts_a_predicate() -> None:
    flaky = Flaky(ValueError("retry me"), ValueError("fatal"))
    policy = retry(on=lambda e: "retry" in str(e), attempts=5, clock=FakeClock())
    with pytest.raises(ValueError, match="fatal"):
        policy.call(flaky)
    assert flaky.calls == 2


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), asyncio.CancelledError()])
def test_interrupts_and_cancellation_are_never_retried(error: BaseException) -> None:
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        retry(on=BaseException, clock=FakeClock())(flaky)()
    assert flaky.calls == 1


def test_on_result_retries_and_returns_the_last_result_when_attempts_run_out() -> None:
    results = iter([None, None, None, "late"])
    policy = retry(on_result=lambda r: r is None, attempts=3, clock=FakeClock())
    assert policy.call(lambda: next(results)) is None
    results = iter([None, "ok"])
    assert policy.call(lambda: next(results)) == "ok"


def test_on_result_retry_may_then_fail_with_an_exception() -> None:
    outcomes = iter([None])

    def fn() -> object:
        value = next(outcomes, "missing")
        if value == "missing":
            raise ConnectionError
        return value

    policy = retry(on_result=lambda r: r is None, attempts=2, clock=FakeClock())
    with pytest.raises(ConnectionError):
        policy.call(fn)


def test_decorated_function_keeps_metadata_and_arguments() -> None:
    @retry(clock=FakeClock())
    def add(a: int, *, b: int) -> int:
        """Adds."""
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."


def test_no_waiting_skips_sleeps() -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError(), ConnectionError())
    with no_waiting():
        assert retry(attempts=3, clock=clock)(flaky)() == "ok"
    assert clock.sleeps == []
    assert clock.monotonic() == 0.0


def test_real_sleep_smoke() -> None:
    flaky = Flaky(ConnectionError())
    start = time.monotonic()
    assert retry(backoff=Backoff.constant(0.02))(flaky)() == "ok"
    assert time.monotonic() - start >= 0.02


# -- hints ---------------------------------------------------------------------------------------


def test_retry_after_hint_replaces_the_computed_delay() -> None:
    clock = FakeClock()
    flaky = Flaky(RateLimitedError("api", retry_after=7.5))
    assert retry(backoff=NO_JITTER, clock=clock)(flaky)() == "ok"
    assert clock.sleeps == [7.5]


def test_retry_after_hint_is_capped_by_max_delay_hint() -> None:
    clock = FakeClock()
    flaky = Flaky(CircuitOpenError("db", retry_after=3600.0))
    assert retry(max_delay_hint=30.0, clock=clock)(flaky)() == "ok"
    assert clock.sleeps == [30.0]


def test_retry_after_hint_of_zero_or_garbage_is_ignored() -> None:
    clock = FakeClock()
    odd = ConnectionError()
    odd.retry_after = "soon"  # type: ignore[attr-defined]
    flaky = Flaky(CircuitOpenError("db", retry_after=0.0), odd)
    assert retry(backoff=NO_JITTER, clock=clock)(flaky)() == "ok"
    assert clock.sleeps == [1.0, 2.0]


def test_retry_after_can_be_turned_off() -> None:
    clock = FakeClock()
    flaky = Flaky(RateLimitedError("api", retry_after=50.0))
    assert retry(backoff=NO_JITTER, retry_after=False, clock=clock)(flaky)() == "ok"
    assert clock.sleeps == [1.0]


# -- bounds: max_elapsed, deadlines, budgets ------------------------------------------------------


def test_max_elapsed_stops_before_a_sleep_that_would_pass_it(events: list[Event]) -> None:
    clock = FakeClock()
    flaky = Flaky(*[ConnectionError()] * 10)
    with pytest.raises(ConnectionError):
        retry(attempts=None, max_elapsed=5.0, backoff=NO_JITTER, clock=clock)(flaky)()
    assert clock.sleeps == [1.0, 2.0]  # a further 4.0 s sleep would end at 7.0 s
    assert flaky.calls == 3
    exhausted = [e for e in events if isinstance(e, RetriesExhausted)]
    assert [e.reason for e in exhausted] == ["max_elapsed"]


def test_unbounded_retry_without_a_deadline_is_refused() -> None:
    policy = retry(attempts=None, clock=FakeClock())
    with pytest.raises(ValueError, match="attempts=None"):
        policy.call(lambda: 1)


def test_unbounded_retry_is_bounded_by_the_deadline() -> None:
    clock = FakeClock()
    flaky = Flaky(*[ConnectionError()] * 100)
    with resilient.timeout(10.0, clock=clock), pytest.raises(ConnectionError):
        retry(attempts=None, backoff=NO_JITTER, clock=clock).call(flaky)
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.monotonic() < 10.0


def test_retry_stops_when_the_next_delay_would_cross_the_deadline(events: list[Event]) -> None:
    clock = FakeClock()
    error = ConnectionError("last")
    flaky = Flaky(ConnectionError(), error)
    with resilient.timeout(2.5, clock=clock), pytest.raises(ConnectionError) as info:
        retry(attempts=10, backoff=NO_JITTER, clock=clock)(flaky)()
    assert info.value is error
    assert clock.sleeps == [1.0]
    assert [e.reason for e in events if isinstance(e, RetriesExhausted)] == ["deadline"]


def test_deadline_exceeded_of_an_enclosing_deadline_is_not_retried() -> None:
    clock = FakeClock()
    calls = []

    def slow() -> None:
        calls.append(1)
        clock.advance(5.0)
        raise DeadlineExceeded(timeout=1.0)

    with resilient.timeout(1.0, clock=clock), pytest.raises(DeadlineExceeded):
        retry(on=Exception, attempts=5, backoff=Backoff.constant(0.0), clock=clock)(slow)()
    assert len(calls) == 1


def test_deadline_exceeded_of_an_inner_attempt_timeout_is_retried() -> None:
    clock = FakeClock()
    flaky = Flaky(DeadlineExceeded(timeout=0.1))
    pipeline = Pipeline(
        resilient.timeout(10.0, clock=clock),
        retry(attempts=3, clock=clock),
        resilient.timeout(0.1, clock=clock),
    )
    assert pipeline.call(flaky) == "ok"
    assert flaky.calls == 2


def test_budget_refuses_retries_beyond_its_ratio_during_an_outage(events: list[Event]) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, minimum_per_second=1.0, window=10.0, clock=clock)
    policies = [retry(attempts=3, budget=budget, clock=clock, name=f"p{i}") for i in range(2)]
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    with no_waiting():
        for i in range(1000):
            with pytest.raises(ConnectionError):
                policies[i % 2].call(down)
    retries = calls - 1000
    assert retries <= 0.1 * 1000 + 1.0 * 10.0
    assert retries >= 0.1 * 1000  # the budget allows what it promised, no less
    refused = [e for e in events if isinstance(e, RetryBudgetExhaustedEvent)]
    assert refused
    assert {e.name for e in refused} == {"p0", "p1"}


def test_budget_refusal_reraises_the_last_exception_at_once() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, minimum_per_second=0.0, clock=clock)
    error = ConnectionError()
    flaky = Flaky(error)
    with pytest.raises(ConnectionError) as info:
        retry(budget=budget, clock=clock)(flaky)()
    assert info.value is error
    assert clock.sleeps == []


def test_budget_refusal_with_on_result_returns_the_last_result() -> None:
    budget = RetryBudget(ratio=0.0, minimum_per_second=0.0, clock=FakeClock())
    policy = retry(on_result=lambda r: r == "bad", budget=budget, clock=FakeClock())
    assert policy.call(lambda: "bad") == "bad"


def test_every_call_deposits_into_the_budget() -> None:
    budget = RetryBudget(clock=FakeClock())
    policy = retry(budget=budget)
    for _ in range(5):
        policy.call(lambda: None)
    assert budget.calls == 5
    assert budget.retries == 0


# -- events and names ----------------------------------------------------------------------------


def test_events_name_each_decorated_function_of_a_shared_policy(events: list[Event]) -> None:
    policy = retry(attempts=2, backoff=NO_JITTER, clock=FakeClock())

    @policy
    def first() -> None:
        raise ConnectionError

    @policy
    def second() -> None:
        raise ConnectionError

    for fn in (first, second):
        with pytest.raises(ConnectionError):
            fn()
    scheduled = [e for e in events if isinstance(e, RetryScheduled)]
    assert [(e.name, e.attempt, e.delay) for e in scheduled] == [
        ("test_events_name_each_decorated_function_of_a_shared_policy.<locals>.first", 1, 1.0),
        ("test_events_name_each_decorated_function_of_a_shared_policy.<locals>.second", 1, 1.0),
    ]
    assert policy.name is None
    exhausted = [e for e in events if isinstance(e, RetriesExhausted)]
    assert [(e.attempts, e.reason, e.policy) for e in exhausted] == [(2, "attempts", "retry")] * 2


def test_explicit_name_is_used_in_events(events: list[Event]) -> None:
    with pytest.raises(ConnectionError):
        retry(attempts=2, name="payments", clock=FakeClock()).call(Flaky(*[ConnectionError()] * 2))
    assert {e.name for e in events} == {"payments"}


# -- block form ----------------------------------------------------------------------------------


def test_block_form_retries_the_block() -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError(), ConnectionError())
    numbers = []
    for attempt in retry(attempts=3, backoff=NO_JITTER, clock=clock).attempts():
        with attempt:
            numbers.append(attempt.number)
            flaky()
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [1.0, 2.0]


def test_block_form_reraises_the_last_exception_when_attempts_run_out() -> None:
    errors = [ConnectionError(i) for i in range(3)]
    flaky = Flaky(*errors)
    with pytest.raises(ConnectionError) as info:  # noqa: PT012
        for attempt in retry(attempts=3, clock=FakeClock()).attempts():
            with attempt:
                flaky()
    assert info.value is errors[-1]


def test_block_form_lets_other_exceptions_through_at_once() -> None:
    runs = 0
    with pytest.raises(KeyError):  # noqa: PT012
        for attempt in retry(on=ConnectionError, clock=FakeClock()).attempts():
            with attempt:
                runs += 1
                raise KeyError
    assert runs == 1


async def test_async_block_form_retries_the_block() -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError())
    numbers = []
    async for attempt in retry(backoff=NO_JITTER, clock=clock).attempts():
        with attempt:
            numbers.append(attempt.number)
            await flaky.acall()
    assert numbers == [1, 2]
    assert clock.sleeps == [1.0]


async def test_async_block_form_reraises_the_last_exception() -> None:
    error = ConnectionError("last")
    flaky = Flaky(ConnectionError(), error)
    with pytest.raises(ConnectionError) as info:  # noqa: PT012
        async for attempt in retry(attempts=2, clock=FakeClock()).attempts():
            with attempt:
                await flaky.acall()
    assert info.value is error


# -- async ---------------------------------------------------------------------------------------


async def test_async_retry_succeeds_after_failures() -> None:
    clock = FakeClock()
    flaky = Flaky(ConnectionError(), ConnectionError())

    @retry(backoff=NO_JITTER, clock=clock)
    async def fetch() -> object:
        return await flaky.acall()

    assert await fetch() == "ok"
    assert clock.sleeps == [1.0, 2.0]


async def test_async_retry_reraises_last_exception_unchanged() -> None:
    error = ConnectionError("last")
    flaky = Flaky(ConnectionError(), error)
    with pytest.raises(ConnectionError) as info:
        await retry(attempts=2, clock=FakeClock()).acall(flaky.acall)
    assert info.value is error


async def test_async_on_result_and_budget() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, minimum_per_second=0.1, window=10.0, clock=clock)
    results = iter([0, 0, 0, 5])

    async def fn() -> int:
        return next(results)

    policy = retry(on_result=lambda r: r == 0, attempts=4, budget=budget, clock=clock)
    assert await policy(fn)() == 0  # one retry allowed by the budget, then the last result
    assert budget.retries == 1


async def test_async_retry_never_retries_cancellation() -> None:
    calls = 0

    @retry(on=BaseException, attempts=5, clock=FakeClock())
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep_forever()

    with anyio.CancelScope() as scope:
        scope.cancel()
        await hang()
    assert scope.cancelled_caught
    assert calls == 1


async def test_async_retry_stops_at_the_deadline() -> None:
    clock = FakeClock()
    flaky = Flaky(*[ConnectionError()] * 10)
    with pytest.raises(ConnectionError):
        async with resilient.timeout(5.0, clock=clock):
            await retry(attempts=10, backoff=NO_JITTER, clock=clock).acall(flaky.acall)
    assert clock.sleeps == [1.0, 2.0]
    assert flaky.calls == 3


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": -2}, "attempts"),
        ({"max_elapsed": -1.0}, "max_elapsed"),
        ({"max_elapsed": 0}, "max_elapsed"),
        ({"max_delay_hint": -1.0}, "max_delay_hint"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        Retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"on": "ValueError"}, "on"),
        ({"on": (ValueError, "x")}, "on"),
        ({"backoff": 1.0}, "backoff"),
        ({"budget": 0.2}, "budget"),
        ({"attempts": 2.5}, "attempts"),
        ({"on_result": 3}, "on_result"),
        ({"clock": object()}, "clock"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(
    kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(TypeError, match=argument):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_retry_and_Retry_take_the_same_arguments() -> None:
    import inspect

    assert list(inspect.signature(retry).parameters) == list(inspect.signature(Retry).parameters)
    assert isinstance(retry(), Retry)


async def test_async_attempt_timeouts_are_cancelled_and_retried() -> None:
    clock = FakeClock()
    started = 0

    async def hang() -> None:
        nonlocal started
        started += 1
        await clock.asleep(2.0)
        await anyio.sleep_forever()

    pipeline = Pipeline(
        retry(attempts=3, backoff=NO_JITTER, clock=clock),
        resilient.timeout(1.0, clock=clock),
    )
    with pytest.raises(DeadlineExceeded) as info:
        await pipeline.acall(hang)
    assert started == 3
    assert info.value.timeout == 1.0
    assert clock.sleeps.count(1.0) == 1  # the retry's first backoff


def test_inside_a_pipeline_retry_is_named_after_the_users_function(events: list[Event]) -> None:
    pipeline = resilient.Pipeline(
        resilient.retry(attempts=2, backoff=Backoff.constant(0.0)), resilient.Timeout(5.0)
    )

    @pipeline
    def fetch_inventory() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        fetch_inventory()
    names = {event.name for event in events if event.policy == "retry"}
    assert names == {fetch_inventory.__qualname__}


async def test_inside_an_async_pipeline_retry_is_named_after_the_users_function(
    events: list[Event],
) -> None:
    pipeline = resilient.Pipeline(
        resilient.retry(attempts=2, backoff=Backoff.constant(0.0)), resilient.Timeout(5.0)
    )

    async def fetch_prices() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        await pipeline.acall(fetch_prices)
    names = {event.name for event in events if event.policy == "retry"}
    assert names == {fetch_prices.__qualname__}


def test_block_form_lets_stop_iteration_out_instead_of_ending_the_loop() -> None:
    tries = []

    def run() -> None:
        for attempt in resilient.retry(attempts=3, backoff=Backoff.constant(0.0)).attempts():
            with attempt:
                tries.append(attempt.number)
                next(iter([]))

    with pytest.raises(StopIteration):
        run()
    assert tries == [1]


async def test_async_block_form_lets_stop_async_iteration_out() -> None:
    tries = []

    async def run() -> None:
        policy = resilient.retry(attempts=3, backoff=Backoff.constant(0.0))
        async for attempt in policy.attempts():
            with attempt:
                tries.append(attempt.number)
                raise StopAsyncIteration

    with pytest.raises(StopAsyncIteration):
        await run()
    assert tries == [1]


def test_a_class_that_is_not_an_exception_is_refused_as_on() -> None:
    with pytest.raises(TypeError, match="on must be an exception type"):
        resilient.retry(on=int)  # type: ignore[arg-type]


READINGS = [0.0, 123.456, 8_300_356.93, 1e9, 1e12]


def _constant(delay: float) -> Backoff:
    return Backoff.constant(delay, jitter="none")


@pytest.mark.parametrize("start", READINGS)
def test_a_deadline_stops_the_retry_whose_next_attempt_would_start_at_it(start: float) -> None:
    clock = FakeClock(start)
    calls: list[float] = []

    @resilient.retry(on=ValueError, attempts=None, backoff=_constant(0.1), clock=clock)
    def flaky() -> None:
        calls.append(clock.monotonic())
        raise ValueError

    with pytest.raises(ValueError), resilient.timeout(0.3, clock=clock):
        flaky()
    assert len(calls) == 3  # at 0, 0.1 and 0.2; the fourth would start at the deadline


@pytest.mark.parametrize("start", READINGS)
async def test_a_deadline_stops_async_retries_alike_at_every_reading(start: float) -> None:
    clock = FakeClock(start)
    calls: list[float] = []

    @resilient.retry(on=ValueError, attempts=None, backoff=_constant(0.1), clock=clock)
    async def flaky() -> None:
        calls.append(clock.monotonic())
        raise ValueError

    with pytest.raises(ValueError):
        async with resilient.timeout(0.3, clock=clock):
            await flaky()
    assert len(calls) == 3


@pytest.mark.parametrize("start", READINGS)
def test_max_elapsed_stops_before_an_attempt_that_would_start_at_the_bound(start: float) -> None:
    clock = FakeClock(start)
    calls: list[float] = []

    @resilient.retry(
        on=ValueError, attempts=None, max_elapsed=1.0, backoff=_constant(0.25), clock=clock
    )
    def flaky() -> None:
        calls.append(clock.monotonic())
        raise ValueError

    with pytest.raises(ValueError):
        flaky()
    assert len(calls) == 4  # at 0, 0.25, 0.5 and 0.75; not a fifth at exactly 1.0


@pytest.mark.parametrize("start", READINGS)
async def test_max_elapsed_stops_async_retries_alike_at_every_reading(start: float) -> None:
    clock = FakeClock(start)
    calls: list[float] = []

    @resilient.retry(
        on=ValueError, attempts=None, max_elapsed=1.0, backoff=_constant(0.25), clock=clock
    )
    async def flaky() -> None:
        calls.append(clock.monotonic())
        raise ValueError

    with pytest.raises(ValueError):
        await flaky()
    assert len(calls) == 4


@pytest.mark.parametrize("start", READINGS)
def test_max_elapsed_still_allows_an_attempt_that_starts_before_the_bound(start: float) -> None:
    clock = FakeClock(start)
    calls: list[float] = []

    @resilient.retry(
        on=ValueError, attempts=None, max_elapsed=1.01, backoff=_constant(0.25), clock=clock
    )
    def flaky() -> None:
        calls.append(clock.monotonic())
        raise ValueError

    with pytest.raises(ValueError):
        flaky()
    assert len(calls) == 5


# -- the decorated function's wrapper (C or Python: the same behaviour) -------------------------


def test_a_plain_retry_decorates_with_the_chosen_version(retry_impl: str) -> None:
    def work() -> int:
        return 1

    native = type(retry(attempts=2)(work)).__name__ == "RetryCall"
    assert native == (retry_impl == "c")
    # Work before or after the first attempt (here on_result): always the Python wrapper.
    assert type(retry(attempts=2, on_result=lambda r: False)(work)).__name__ == "function"


def test_the_wrapper_passes_arguments_and_returns_the_result() -> None:
    @retry(attempts=2)
    def join(a: object, /, b: object, *rest: object, c: object = 3, **more: object) -> object:
        return (a, b, rest, c, more)

    assert join(1, 2) == (1, 2, (), 3, {})
    assert join(1, b=2, c=4, d=5) == (1, 2, (), 4, {"d": 5})
    assert join(1, 2, 3, 4) == (1, 2, (3, 4), 3, {})
    with pytest.raises(TypeError):
        join()  # type: ignore[call-arg]


def test_failed_attempts_are_retried_with_the_same_arguments() -> None:
    seen: list[tuple[object, ...]] = []

    @retry(on=ConnectionError, attempts=3, clock=FakeClock())
    def flaky(a: int, *, b: int) -> int:
        seen.append((a, b))
        if len(seen) < 3:
            raise ConnectionError
        return a + b

    assert flaky(1, b=2) == 3
    assert seen == [(1, 2)] * 3


def test_an_error_not_retried_is_the_same_object_with_its_traceback() -> None:
    error = ValueError("no")

    @retry(on=ConnectionError, attempts=3, clock=FakeClock())
    def broken() -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        broken()
    assert caught.value is error
    names = [entry.name for entry in caught.traceback]
    assert "broken" in names  # where it was raised is kept


def test_keyboard_interrupt_goes_straight_through() -> None:
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry(attempts=3, clock=FakeClock())(flaky)()
    assert flaky.calls == 1


def test_exhausted_retries_reraise_the_last_error_and_emit_the_events(
    events: list[Event],
) -> None:
    errors = [ConnectionError(i) for i in range(3)]
    wrapped = retry(attempts=3, backoff=NO_JITTER, clock=FakeClock(), name="fn")(Flaky(*errors))
    with pytest.raises(ConnectionError) as caught:
        wrapped()
    assert caught.value is errors[2]
    assert [type(e).__name__ for e in events] == [
        "RetryScheduled",
        "RetryScheduled",
        "RetriesExhausted",
    ]
    assert [e.name for e in events] == ["fn", "fn", "fn"]


def test_the_wrapper_looks_like_the_decorated_function() -> None:
    def work(x: int, y: str = "a") -> str:
        """Work on x."""
        return y * x

    work.marker = "kept"  # type: ignore[attr-defined]
    wrapped = retry(attempts=2)(work)
    assert wrapped.__wrapped__ is work  # type: ignore[attr-defined]
    assert wrapped.__name__ == "work"
    assert wrapped.__qualname__ == work.__qualname__
    assert wrapped.__doc__ == "Work on x."
    assert wrapped.__module__ == __name__
    assert wrapped.marker == "kept"  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(work)
    assert "work" in repr(wrapped)
    assert functools.partial(wrapped, 2)() == "aa"


def test_a_decorated_method_binds_like_a_function() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry(on=ConnectionError, attempts=2, clock=FakeClock())
        def get(self, path: str) -> tuple[object, str]:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError
            return (self, path)

        @staticmethod
        @retry(attempts=2)
        def static(x: int) -> int:
            return x

        @retry(attempts=2)
        @classmethod
        def made(cls, x: int) -> tuple[type, int]:
            return (cls, x)

    client = Client()
    assert client.get("/a") == (client, "/a")  # bound: self passed on every attempt
    assert client.calls == 2
    assert Client.get(client, "/b") == (client, "/b")  # through the class: a plain function
    assert list(inspect.signature(client.get).parameters) == ["path"]
    assert list(inspect.signature(Client.get).parameters) == ["self", "path"]
    assert Client.static(1) == client.static(1) == 1
    assert Client.made(2) == (Client, 2)
    method = client.get
    assert method.__self__ is client


def test_the_wrapper_can_be_referenced_weakly_and_collected() -> None:
    import gc
    import weakref

    def work() -> int:
        return 1

    wrapped = retry(attempts=2)(work)
    reference = weakref.ref(wrapped)
    wrapped.cycle = wrapped  # type: ignore[attr-defined]
    del wrapped
    gc.collect()
    assert reference() is None


def test_calls_through_every_path_leak_no_references() -> None:
    import gc
    import sys

    from prometheus_client import CollectorRegistry

    from resilient.instrumentation.prometheus import PrometheusMetrics

    argument = object()
    keyword = object()
    result = object()
    tries: list[int] = []

    @retry(on=ConnectionError, attempts=2, backoff=Backoff.constant(0.0), name="leaks")
    def work(a: object, *, k: object, fail: str = "never") -> object:
        tries.append(1)
        if fail == "always" or (fail == "once" and len(tries) == 1):
            raise ConnectionError
        return result

    def run() -> None:
        for _ in range(500):
            work(argument, k=keyword)
            tries.clear()
            assert work(argument, k=keyword, fail="once") is result  # on the second attempt
            with pytest.raises(ConnectionError):
                work(argument, k=keyword, fail="always")
        gc.collect()

    def counts() -> tuple[int, int, int]:
        return sys.getrefcount(argument), sys.getrefcount(keyword), sys.getrefcount(result)

    # Nobody listening; counted; timed inline; timed in Python (two sinks); CallCompleted.
    settings = [{}, {"durations": False}, {"durations": True}]
    run()
    before = counts()
    for setting in settings:
        metrics = PrometheusMetrics(registry=CollectorRegistry(), **setting)
        try:
            run()
        finally:
            metrics.close()
    first = PrometheusMetrics(registry=CollectorRegistry())
    second = PrometheusMetrics(registry=CollectorRegistry(), namespace="second")
    try:
        run()
    finally:
        first.close()
        second.close()
    seen: list[Event] = []
    subscribe(seen.append, events=[CallCompleted])
    try:
        run()
    finally:
        unsubscribe(seen.append)
    seen.clear()
    run()
    assert counts() == before


@retry(attempts=2)
def _module_level(x: int) -> int:
    return x + 1


def test_a_module_level_decorated_function_pickles_and_copies_by_reference() -> None:
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(_module_level)) is _module_level
    assert copy.copy(_module_level) is _module_level
    assert copy.deepcopy(_module_level) is _module_level


def test_endless_recursion_through_the_wrapper_is_a_recursion_error() -> None:
    @retry(on=ConnectionError, attempts=2)
    def down(n: int) -> int:
        return down(n + 1)

    with pytest.raises(RecursionError):
        down(0)
