"""Retry: run a call again when it fails, with jittered backoff, a budget and the deadline.

```python
import resilient
from resilient.testing import FakeClock

calls = []


@resilient.retry(on=ConnectionError, attempts=3, clock=FakeClock())
def flaky() -> str:
    calls.append(1)
    if len(calls) < 3:
        raise ConnectionError("try again")
    return "ok"


assert flaky() == "ok" and len(calls) == 3
```

The success path is a ``try: return fn(*args, **kwargs)``; everything a failure needs (the
decision, the delay, events, the sleep) lives in the slow path. The decision itself,
`Retry._decide`, is plain code that takes ``now`` and does no I/O; the sync, async and block
drivers around it only call the function and sleep.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from time import monotonic_ns
from types import TracebackType
from typing import Any, Final, TypeVar

from typing_extensions import ParamSpec, Self

from ._backoff import Backoff
from ._budget import RetryBudget
from ._clock import Clock, check_clock, switches
from ._deadline import get_deadline, reaches
from ._events import (
    FOLD_AT,
    HUB,
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
    aclocked,
    acounted,
    atimed,
    clocked,
    counted,
    fold,
    timed,
)
from ._native import load_speedups
from ._policy import Policy

__all__ = ["Attempt", "AttemptIterator", "Retry", "retry"]

P = ParamSpec("P")
R = TypeVar("R")

#: Exceptions that are never retried, whatever ``on`` says.
_NEVER: Final = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)
_UNLIMITED: Final = sys.maxsize
_DEFAULT_BACKOFF: Final = Backoff.exponential(0.1, 10.0, 2.0, "full")

#: The C extension, read when a function is decorated (the tests swap it to run both versions).
_speedups: Any = load_speedups()

_Predicate = Callable[[BaseException], bool]
_On = type[BaseException] | tuple[type[BaseException], ...] | _Predicate


def _never_retried(error: BaseException) -> bool:
    """Cancellation (asyncio, trio, anyio), KeyboardInterrupt, SystemExit, GeneratorExit."""
    if isinstance(error, Exception):
        return False
    if isinstance(error, _NEVER):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(error, trio.Cancelled)


def _name_of(fn: object, args: tuple[Any, ...] = ()) -> str:
    # Inside a Pipeline, ``fn`` is the next policy's ``call`` and the user's function comes
    # later in ``args``: name the retry after the user's function, not after a policy.
    while isinstance(getattr(fn, "__self__", None), Policy) and args:
        fn, args = args[0], args[1:]
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else repr(fn)


def _matcher(on: object) -> _Predicate:
    if isinstance(on, type) and issubclass(on, BaseException):
        types: tuple[type[BaseException], ...] = (on,)
    elif isinstance(on, tuple):
        for index, item in enumerate(on):
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"on[{index}] must be an exception type, got {item!r}")
        types = on
    elif callable(on) and not isinstance(on, type):  # a class that is no exception is a mistake
        return on
    else:
        raise TypeError(f"on must be an exception type, a tuple of them or a predicate, got {on!r}")

    def matches(error: BaseException) -> bool:
        return isinstance(error, types)

    return matches


def _hint(error: BaseException | None) -> float | None:
    """A positive, finite ``retry_after`` attribute of ``error``, or None."""
    value = getattr(error, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value <= 0.0:
        return None
    return float(value)


class Retry(Policy):
    """Run a call again when it fails (or its result says so), waiting between attempts.

    Use it as a decorator (``@Retry(...)`` or ``@retry(...)``), through `call` / `acall`, in a
    `Pipeline`, or in block form with `attempts`. All options are keyword-only.

    When the attempts run out, the last exception is re-raised unchanged (the same object), or,
    when ``on_result`` asked for the retries, the last result is returned. Cancellation
    (asyncio, trio, anyio), `KeyboardInterrupt`, `SystemExit`, and any failure once the deadline
    in scope has passed (so `DeadlineExceeded` of an enclosing deadline) are never retried.

    Args:
        on: what to retry: an exception type, a tuple of them, or a predicate on the exception.
            Default `Exception`.
        attempts: total attempts including the first (default 3, must be >= 1); None for no
            limit, in which case ``max_elapsed`` or a deadline in scope must bound the retries:
            a call with neither raises `ValueError` before the first attempt.
        backoff: the delays between attempts (default: exponential from 0.1 s, doubling, up to
            10 s, full jitter).
        on_result: a predicate on the return value; when it returns True the call is retried.
        max_elapsed: seconds for all attempts and sleeps together, counted from the first
            attempt; retrying stops when the next sleep would end past it.
        retry_after: honour a ``retry_after`` attribute (seconds) on the exception, such as
            `RateLimitedError` and `CircuitOpenError` carry: a positive value replaces the
            computed delay, capped by ``max_delay_hint``. Default True.
        max_delay_hint: the cap on a ``retry_after`` hint, in seconds (default 60).
        budget: a `RetryBudget` shared with other policies; when it refuses a retry, the last
            exception is re-raised (or last result returned) at once.
        name: the name in events and metrics; default the decorated function's qualified name
            (each decorated function keeps its own, even when they share one policy).
        clock: where time is read and sleeps happen (default: the system clock).

    Raises:
        ValueError: an argument is out of range (the message names it).
        TypeError: an argument has the wrong type.
    """

    __slots__ = (
        "_attempts",
        "_backoff_delay",
        "_budget",
        "_clock",
        "_fast",
        "_match",
        "_max_elapsed",
        "_on_result",
        "_retry_after",
        "_unbounded",
        "attempts_limit",
        "backoff",
        "budget",
        "max_delay_hint",
        "max_elapsed",
        "name",
        "on",
        "on_result",
        "retry_after",
    )

    kind = "retry"

    def __init__(
        self,
        *,
        on: _On = Exception,
        attempts: int | None = 3,
        backoff: Backoff | None = None,
        on_result: Callable[[Any], bool] | None = None,
        max_elapsed: float | None = None,
        retry_after: bool = True,
        max_delay_hint: float = 60.0,
        budget: RetryBudget | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._match = _matcher(on)
        self.on = on
        if attempts is not None:
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                raise TypeError(f"attempts must be an int or None, got {attempts!r}")
            if attempts < 1:
                raise ValueError(f"attempts must be >= 1, got {attempts!r}")
        #: The configured number of attempts (None: unlimited).
        self.attempts_limit = attempts
        self._attempts = _UNLIMITED if attempts is None else attempts
        if backoff is None:
            backoff = _DEFAULT_BACKOFF
        elif not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff, got {backoff!r}")
        self.backoff = backoff
        self._backoff_delay = backoff.delay
        if on_result is not None and not callable(on_result):
            raise TypeError(f"on_result must be callable, got {on_result!r}")
        self.on_result = on_result
        self._on_result = on_result
        if max_elapsed is not None:
            if isinstance(max_elapsed, bool) or not isinstance(max_elapsed, (int, float)):
                raise TypeError(f"max_elapsed must be a number of seconds, got {max_elapsed!r}")
            if not math.isfinite(max_elapsed) or max_elapsed <= 0:
                raise ValueError(f"max_elapsed must be a finite number > 0, got {max_elapsed!r}")
            max_elapsed = float(max_elapsed)
        self.max_elapsed = max_elapsed
        self._max_elapsed = math.inf if max_elapsed is None else max_elapsed
        self.retry_after = bool(retry_after)
        self._retry_after = self.retry_after
        if isinstance(max_delay_hint, bool) or not isinstance(max_delay_hint, (int, float)):
            raise TypeError(f"max_delay_hint must be a number of seconds, got {max_delay_hint!r}")
        if math.isnan(max_delay_hint) or max_delay_hint < 0:
            raise ValueError(f"max_delay_hint must be >= 0, got {max_delay_hint!r}")
        self.max_delay_hint = float(max_delay_hint)
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget, got {budget!r}")
        self.budget = budget
        self._budget = budget
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name
        self._clock = check_clock(clock)
        self._unbounded = attempts is None and max_elapsed is None
        # The bare ``try: return fn()`` wrapper does: nothing to do before or after the call.
        self._fast = budget is None and on_result is None and max_elapsed is None
        self._fast = self._fast and not self._unbounded

    def __repr__(self) -> str:
        return (
            f"Retry(on={self.on!r}, attempts={self.attempts_limit!r}, backoff={self.backoff!r}, "
            f"name={self.name!r})"
        )

    # -- the decision (no I/O, no sleeping) -----------------------------------------------------

    def _check_bounded(self) -> None:
        if get_deadline() is None:
            raise ValueError(
                "attempts=None needs max_elapsed or a deadline in scope (resilient.timeout) to "
                "bound the retries; this call has neither"
            )

    def _start(self) -> float:
        """Before the first attempt: check the bound, deposit in the budget, note the time."""
        if self._unbounded:
            self._check_bounded()
        if self._budget is not None:
            self._budget.deposit()
        return self._clock.monotonic() if self.max_elapsed is not None else 0.0

    def _decide(
        self,
        attempt: int,
        error: BaseException | None,
        previous: float | None,
        start: float,
        name: str,
    ) -> float | None:
        """The delay before the next attempt after ``attempt`` failed, or None to give up.

        ``error`` is the attempt's exception, or None when ``on_result`` rejected its result.
        Emits `RetryScheduled`, `RetriesExhausted` or `RetryBudgetExhaustedEvent`. Exceptions
        that are not to be retried at all (cancellation, non-matching types) are filtered out
        by the caller before.
        """
        reason = None
        if attempt >= self._attempts:
            reason = "attempts"
        else:
            hint = _hint(error) if self._retry_after else None
            if hint is not None:
                delay = hint if hint < self.max_delay_hint else self.max_delay_hint
            else:
                delay = self._backoff_delay(attempt, previous)
            # The next attempt would start at ``now + delay``: at or after the bound, stop (as
            # tenacity's stop_before_delay does), whatever the clock's reading (see `reaches`).
            if self.max_elapsed is not None:
                now = self._clock.monotonic()
                if reaches(now + delay - start, self._max_elapsed, now):
                    reason = "max_elapsed"
            deadline = get_deadline()
            if deadline is not None and reason is None and deadline.reached_after(delay):
                reason = "deadline"
            if reason is None:
                budget = self._budget
                if budget is not None and not budget.try_withdraw():
                    if HUB.active:
                        HUB.emit(RetryBudgetExhaustedEvent(self.kind, name, attempt, error))
                    return None
                if HUB.active:
                    HUB.emit(RetryScheduled(self.kind, name, attempt, delay, error))
                return delay
        if HUB.active:
            HUB.emit(RetriesExhausted(self.kind, name, attempt, error, reason))
        return None

    def _retryable(self, error: BaseException) -> bool:
        if _never_retried(error):
            return False
        deadline = get_deadline()
        if deadline is not None and deadline.expired():
            return False  # the enclosing deadline passed: nothing can be retried any more
        return self._match(error)

    # -- sync driver ----------------------------------------------------------------------------

    def _retry_sync(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: BaseException | None,
        result: Any,
        start: float,
        name: str,
    ) -> R:
        """Attempt 1 failed with ``error`` (or returned a rejected ``result``): go on retrying."""
        attempt = 1
        previous: float | None = None
        on_result = self._on_result
        clock = self._clock
        while True:
            if error is not None and not self._retryable(error):
                raise error
            delay = self._decide(attempt, error, previous, start, name)
            if delay is None:
                if error is not None:
                    raise error
                return result  # type: ignore[no-any-return]
            if delay > 0.0 and not switches.no_waiting:
                clock.sleep(delay)
            previous = delay
            attempt += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
                continue
            error = None
            if on_result is None or not on_result(result):
                return result  # type: ignore[no-any-return]

    def _run_sync(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
    ) -> R:
        """A whole run (every attempt), for `timed` while a subscriber asks for `CallCompleted`."""
        start = self._start() if not self._fast else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            return self._retry_sync(fn, args, kwargs, exc, None, start, name)
        on_result = self._on_result
        if on_result is None or not on_result(result):
            return result
        return self._retry_sync(fn, args, kwargs, None, result, start, name)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)``, retrying as configured, and return its result."""
        if HUB.timing:
            name = self.name or _name_of(fn, args)
            return timed(self, name, self._run_sync, (fn, args, kwargs, name), {})  # type: ignore[no-any-return]
        start = self._start() if not self._fast else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            error: BaseException = exc
        else:
            on_result = self._on_result
            if on_result is None or not on_result(result):
                return result
            return self._retry_sync(
                fn, args, kwargs, None, result, start, self.name or _name_of(fn, args)
            )
        return self._retry_sync(
            fn, args, kwargs, error, None, start, self.name or _name_of(fn, args)
        )

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        name = self.name if self.name is not None else _name_of(fn)
        slow = self._retry_sync
        run = self._run_sync
        if self._fast:
            key = (self.kind, name or self.kind)
            system = self._clock.monotonic is time.monotonic  # timed inline in nanoseconds
            if _speedups is not None:
                # `fast_wrapper` below, in C (`RetryCall` in _speedups.c): a Python frame and
                # two calls of monotonic_ns cost about as much as the rest of the success path.
                # Failures go to the same Python functions, with the same arguments.
                native: Callable[P, R] = _speedups.RetryCall(
                    fn=fn,
                    slow=slow,
                    run=run,
                    policy=self,
                    name=name,
                    key=key,
                    hub=HUB,
                    system=system,
                    timed=timed,
                    counted=counted,
                    clocked=clocked,
                    fold=fold,
                    fold_at=FOLD_AT,
                )
                return native

            def fast_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                if HUB.timing:
                    success = HUB.counting.get(key)
                    if success is None:
                        nanos = HUB.nanos.get(key) if system else None
                        if nanos is None:  # not bound yet, or several sinks, or another clock
                            return timed(self, name, run, (fn, args, kwargs, name), {})  # type: ignore[no-any-return]
                        # One sink that takes nanoseconds: timed inline (see `_Hub.nanos`).
                        start = monotonic_ns()
                        try:
                            result = fn(*args, **kwargs)
                        except BaseException as exc:
                            return clocked(key, start, slow, fn, args, kwargs, exc, None, 0.0, name)  # type: ignore[no-any-return]
                        nanos.append(monotonic_ns() - start)
                        if len(nanos) >= FOLD_AT:
                            fold(key)
                        return result
                    # Counted without a duration: inline, the cheapest way.
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        return counted(key, slow, fn, args, kwargs, exc, None, 0.0, name)  # type: ignore[no-any-return]
                    success()
                    return result
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                return slow(fn, args, kwargs, error, None, 0.0, name)

            return fast_wrapper

        start_call = self._start
        on_result = self._on_result

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if HUB.timing:
                return timed(self, name, run, (fn, args, kwargs, name), {})  # type: ignore[no-any-return]
            start = start_call()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
            else:
                if on_result is None or not on_result(result):
                    return result
                return slow(fn, args, kwargs, None, result, start, name)
            return slow(fn, args, kwargs, error, None, start, name)

        return wrapper

    # -- async driver ---------------------------------------------------------------------------

    async def _retry_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: BaseException | None,
        result: Any,
        start: float,
        name: str,
    ) -> R:
        """Attempt 1 failed with ``error`` (or returned a rejected ``result``): go on retrying."""
        attempt = 1
        previous: float | None = None
        on_result = self._on_result
        clock = self._clock
        while True:
            if error is not None and not self._retryable(error):
                raise error
            delay = self._decide(attempt, error, previous, start, name)
            if delay is None:
                if error is not None:
                    raise error
                return result  # type: ignore[no-any-return]
            if delay > 0.0 and not switches.no_waiting:
                await clock.asleep(delay)
            previous = delay
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
                continue
            error = None
            if on_result is None or not on_result(result):
                return result  # type: ignore[no-any-return]

    async def _run_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> R:
        """A whole run (every attempt), for `atimed` while a subscriber asks for `CallCompleted`."""
        start = self._start() if not self._fast else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            return await self._retry_async(fn, args, kwargs, exc, None, start, name)
        on_result = self._on_result
        if on_result is None or not on_result(result):
            return result
        return await self._retry_async(fn, args, kwargs, None, result, start, name)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)``, retrying as configured, and return its result."""
        if HUB.timing:
            name = self.name or _name_of(fn, args)
            return await atimed(self, name, self._run_async, (fn, args, kwargs, name), {})
        start = self._start() if not self._fast else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            error: BaseException = exc
        else:
            on_result = self._on_result
            if on_result is None or not on_result(result):
                return result
            return await self._retry_async(
                fn, args, kwargs, None, result, start, self.name or _name_of(fn, args)
            )
        return await self._retry_async(
            fn, args, kwargs, error, None, start, self.name or _name_of(fn, args)
        )

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        name = self.name if self.name is not None else _name_of(fn)
        slow = self._retry_async
        run = self._run_async
        if self._fast:
            key = (self.kind, name or self.kind)
            system = self._clock.monotonic is time.monotonic  # timed inline in nanoseconds

            async def fast_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                if HUB.timing:
                    success = HUB.counting.get(key)
                    if success is None:
                        nanos = HUB.nanos.get(key) if system else None
                        if nanos is None:  # not bound yet, or several sinks, or another clock
                            return await atimed(self, name, run, (fn, args, kwargs, name), {})
                        # One sink that takes nanoseconds: timed inline (see `_Hub.nanos`).
                        start = monotonic_ns()
                        try:
                            result = await fn(*args, **kwargs)
                        except BaseException as exc:
                            return await aclocked(
                                key, start, slow, fn, args, kwargs, exc, None, 0.0, name
                            )
                        nanos.append(monotonic_ns() - start)
                        if len(nanos) >= FOLD_AT:
                            fold(key)
                        return result
                    # Counted without a duration: inline, the cheapest way.
                    try:
                        result = await fn(*args, **kwargs)
                    except BaseException as exc:
                        return await acounted(key, slow, fn, args, kwargs, exc, None, 0.0, name)
                    success()
                    return result
                try:
                    return await fn(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                return await slow(fn, args, kwargs, error, None, 0.0, name)

            return fast_wrapper

        start_call = self._start
        on_result = self._on_result

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if HUB.timing:
                return await atimed(self, name, run, (fn, args, kwargs, name), {})
            start = start_call()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
            else:
                if on_result is None or not on_result(result):
                    return result
                return await slow(fn, args, kwargs, None, result, start, name)
            return await slow(fn, args, kwargs, error, None, start, name)

        return wrapper

    # -- block form -----------------------------------------------------------------------------

    def attempts(self, *, name: str | None = None) -> AttemptIterator:
        """Iterate over attempts, for retrying a block of code rather than a function.

        ```python
        import resilient
        from resilient.testing import FakeClock

        policy = resilient.Retry(on=ConnectionError, attempts=3, clock=FakeClock())
        tries = []
        for attempt in policy.attempts():
            with attempt:
                tries.append(attempt.number)
                if len(tries) < 2:
                    raise ConnectionError
        assert tries == [1, 2]
        ```

        ``async for attempt in policy.attempts(): with attempt: ...`` does the same in async
        code, sleeping with the clock's async sleep. ``with attempt`` swallows an exception that
        may be retried; the loop then sleeps and goes on, or, when it gives up (attempts,
        budget, deadline, ``max_elapsed``), re-raises that last exception unchanged from the
        ``for`` statement. Other exceptions leave the block at once. The block form retries on
        exceptions only: ``on_result`` does not apply to it.

        Args:
            name: the name in events (default: the policy's name, else ``"retry"``).
        """
        return AttemptIterator(self, name or self.name or "retry")


class Attempt:
    """One attempt of the block form; use it as ``with attempt:`` around the code to retry.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry, and so on.
    """

    __slots__ = ("_policy", "error", "number")

    def __init__(self, policy: Retry, number: int) -> None:
        self._policy = policy
        self.number = number
        #: The exception this attempt swallowed to be retried, if any.
        self.error: BaseException | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if (
            exc is None
            # Re-raised from the iterator's __next__ / __anext__, these would read as the end
            # of the loop and the failure would vanish: they propagate at once instead.
            or isinstance(exc, (StopIteration, StopAsyncIteration))
            or not self._policy._retryable(exc)
        ):
            return False
        self.error = exc
        return True

    def __repr__(self) -> str:
        return f"Attempt(number={self.number!r})"


class AttemptIterator:
    """The attempts of one run of the block form: iterate it with ``for`` or ``async for``.

    Made by `Retry.attempts`; use each one once.
    """

    __slots__ = ("_attempt", "_name", "_policy", "_previous", "_start")

    def __init__(self, policy: Retry, name: str) -> None:
        self._policy = policy
        self._name = name
        self._attempt: Attempt | None = None
        self._previous: float | None = None
        self._start = 0.0

    def __iter__(self) -> Self:
        return self

    def __aiter__(self) -> Self:
        return self

    def _next_delay(self) -> float | None:
        """None before the first attempt; else the delay, raising or stopping when done."""
        last = self._attempt
        policy = self._policy
        if last is None:
            self._start = policy._start()
            return None
        error = last.error
        if error is None:
            raise StopIteration
        delay = policy._decide(last.number, error, self._previous, self._start, self._name)
        if delay is None:
            raise error
        self._previous = delay
        return delay

    def __next__(self) -> Attempt:
        delay = self._next_delay()
        if delay is not None and delay > 0.0 and not switches.no_waiting:
            self._policy._clock.sleep(delay)
        last = self._attempt
        self._attempt = Attempt(self._policy, 1 if last is None else last.number + 1)
        return self._attempt

    async def __anext__(self) -> Attempt:
        try:
            delay = self._next_delay()
        except StopIteration:
            raise StopAsyncIteration from None
        if delay is not None and delay > 0.0 and not switches.no_waiting:
            await self._policy._clock.asleep(delay)
        last = self._attempt
        self._attempt = Attempt(self._policy, 1 if last is None else last.number + 1)
        return self._attempt


def retry(
    *,
    on: _On = Exception,
    attempts: int | None = 3,
    backoff: Backoff | None = None,
    on_result: Callable[[Any], bool] | None = None,
    max_elapsed: float | None = None,
    retry_after: bool = True,
    max_delay_hint: float = 60.0,
    budget: RetryBudget | None = None,
    name: str | None = None,
    clock: Clock | None = None,
) -> Retry:
    """Build a `Retry` policy; the usual way to write one as a decorator.

    ```python
    import resilient


    @resilient.retry(on=TimeoutError, attempts=5, backoff=resilient.Backoff.constant(0.0))
    def fetch() -> int:
        return 42


    assert fetch() == 42
    ```

    Takes exactly the keyword-only arguments of `Retry`; see there.
    """
    return Retry(
        on=on,
        attempts=attempts,
        backoff=backoff,
        on_result=on_result,
        max_elapsed=max_elapsed,
        retry_after=retry_after,
        max_delay_hint=max_delay_hint,
        budget=budget,
        name=name,
        clock=clock,
    )
