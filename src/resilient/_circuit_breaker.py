"""Circuit breaker: stop calling a dependency that keeps failing, and probe it before trusting it.

The design has three layers:

* **Windows** (`CountWindow`, `TimeWindow`) describe the sliding window; each builds a counter
  that keeps running totals (calls, failures, slow calls) in constant memory: a preallocated
  ring of outcome codes for the count window, a ring of time buckets for the time window.
* **The backend** (`_MemoryBackend`) is the pure state machine: it owns the window and the state,
  takes ``now`` as an argument, does no I/O and never sleeps. Its whole interface is
  ``acquire(now) -> _Permit | _Rejection``, ``record(permit, outcome, duration, now)``,
  ``poll(now)``, ``snapshot(now)`` and the operator transitions. A backend that keeps the state
  somewhere else (for example in Redis, behind atomic scripts) implements the same methods.
* **The driver** (`CircuitBreaker`) reads the clock, asks the backend for a permit, runs the
  user's function with no lock held, classifies the outcome and records it.

The closed-state success path takes no lock to acquire (the permit of the current CLOSED period
is read with one attribute access) and one short lock section to record the outcome.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from time import monotonic_ns
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from typing_extensions import ParamSpec, Self

from ._clock import Clock, check_clock
from ._deadline import deadline_passed, is_cancellation
from ._errors import CircuitOpenError, DeadlineExceeded, Rejected
from ._events import (
    FOLD_AT,
    HUB,
    CallRejected,
    CircuitStateChanged,
    _Unraisable,
    clocked_failure,
    count_failure,
    fold,
)
from ._policy import Policy
from ._scopes import ScopeStack, caller_frame

if TYPE_CHECKING:
    from .stores import MemoryStore, RedisStore

__all__ = [
    "CircuitBreaker",
    "CircuitMetrics",
    "CircuitState",
    "CountWindow",
    "OpenBackoff",
    "TimeWindow",
]

P = ParamSpec("P")
R = TypeVar("R")

# Outcome codes handed to ``record``.
SUCCESS = 0
FAILURE = 1
NEUTRAL = 2  # counts neither way (ignored exceptions, cancellation, KeyboardInterrupt...)
TIMEOUT = 3  # the deadline in scope expired: a failure, and a slow call whatever its duration

# Window codes: bit 0 = failure, bit 1 = slow.
_SLOW = 2


class CircuitState(str, Enum):
    """The state of a circuit breaker.

    ``CLOSED``: calls flow and are counted. ``OPEN``: calls are rejected until the open period
    ends. ``HALF_OPEN``: a limited number of trial calls decide between CLOSED and OPEN.
    ``FORCED_OPEN`` and ``DISABLED`` are set by an operator (`CircuitBreaker.force_open`,
    `CircuitBreaker.disable`) and stay until `CircuitBreaker.reset`.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED


@runtime_checkable
class OpenBackoff(Protocol):
    """What `CircuitBreaker` needs of a backoff for ``open_for``: an iterator of delays.

    `resilient.Backoff` provides it; any object whose ``delays()`` returns an iterator of
    floats (seconds) will do.
    """

    def delays(self) -> Iterator[float]:
        """An iterator of delays in seconds: the first, second, third... open periods."""
        ...


# --------------------------------------------------------------------------------------------
# Windows


class _Counter(Protocol):
    calls: int
    failures: int
    slow: int

    def add(self, code: int, now: float) -> None: ...

    def expire(self, now: float) -> None: ...


class _CountCounter:
    """The last ``size`` outcomes in a preallocated ring, with running totals."""

    __slots__ = ("_index", "_ring", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._ring = [0] * size
        self._size = size
        self._index = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def add(self, code: int, now: float) -> None:
        index = self._index
        ring = self._ring
        if self.calls == self._size:
            old = ring[index]
            if old:
                self.failures -= old & 1
                self.slow -= old >> 1
        else:
            self.calls += 1
        ring[index] = code
        if code:
            self.failures += code & 1
            self.slow += code >> 1
        index += 1
        self._index = 0 if index == self._size else index

    def expire(self, now: float) -> None:
        """Outcomes in a count window never expire."""


class _TimeCounter:
    """Outcomes in the last ``buckets`` time buckets of ``width`` seconds each."""

    __slots__ = (
        "_b_calls",
        "_b_failures",
        "_b_slow",
        "_head",
        "_n",
        "_width",
        "calls",
        "failures",
        "slow",
    )

    def __init__(self, seconds: float, buckets: int) -> None:
        self._n = buckets
        self._width = seconds / buckets
        self._b_calls = [0] * buckets
        self._b_failures = [0] * buckets
        self._b_slow = [0] * buckets
        self._head: int | None = None  # the epoch (bucket number since 0) of the newest bucket
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def expire(self, now: float) -> None:
        epoch = int(now // self._width)
        head = self._head
        if head is None or epoch - head >= self._n:
            for i in range(self._n):
                self._b_calls[i] = self._b_failures[i] = self._b_slow[i] = 0
            self.calls = self.failures = self.slow = 0
        elif epoch > head:
            for e in range(head + 1, epoch + 1):
                i = e % self._n
                self.calls -= self._b_calls[i]
                self.failures -= self._b_failures[i]
                self.slow -= self._b_slow[i]
                self._b_calls[i] = self._b_failures[i] = self._b_slow[i] = 0
        else:
            return
        self._head = epoch

    def add(self, code: int, now: float) -> None:
        if self._head is None or now // self._width > self._head:
            self.expire(now)
        i = self._head % self._n  # type: ignore[operator]
        self._b_calls[i] += 1
        self.calls += 1
        if code & 1:
            self._b_failures[i] += 1
            self.failures += 1
        if code & _SLOW:
            self._b_slow[i] += 1
            self.slow += 1


class CountWindow:
    """A sliding window over the last ``size`` calls.

    Args:
        size: how many of the most recent calls are counted (default 100).

    Raises:
        ValueError: ``size`` is below 1.
    """

    __slots__ = ("size",)

    def __init__(self, size: int = 100) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, got {size!r}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self.size = size

    def _counter(self) -> _CountCounter:
        return _CountCounter(self.size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountWindow) and other.size == self.size

    def __hash__(self) -> int:
        return hash(("count", self.size))

    def __repr__(self) -> str:
        return f"CountWindow(size={self.size})"


class TimeWindow:
    """A sliding window over the calls of the last ``seconds``.

    The window is kept as ``buckets`` buckets of ``seconds / buckets`` each, so memory is
    constant whatever the traffic; the oldest bucket drops out as a whole, so the window covers
    between ``seconds - seconds / buckets`` and ``seconds`` of history.

    Args:
        seconds: the length of the window.
        buckets: how many buckets the window is divided into (default 10).

    Raises:
        ValueError: ``seconds`` is not positive or ``buckets`` is below 1.
    """

    __slots__ = ("buckets", "seconds")

    def __init__(self, seconds: float, buckets: int = 10) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds must be a number, got {seconds!r}")
        if not seconds >= 1e-6 or seconds == float("inf"):
            # Below a microsecond, bucket numbers (now / width) overflow a float.
            raise ValueError(f"seconds must be >= 1e-06 and finite, got {seconds!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int):
            raise TypeError(f"buckets must be an int, got {buckets!r}")
        if not 1 <= buckets <= 1_000_000:
            raise ValueError(f"buckets must be >= 1 and <= 1000000, got {buckets!r}")
        self.seconds = float(seconds)
        self.buckets = buckets

    def _counter(self) -> _TimeCounter:
        return _TimeCounter(self.seconds, self.buckets)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TimeWindow)
            and other.seconds == self.seconds
            and other.buckets == self.buckets
        )

    def __hash__(self) -> int:
        return hash(("time", self.seconds, self.buckets))

    def __repr__(self) -> str:
        return f"TimeWindow(seconds={self.seconds!r}, buckets={self.buckets})"


@dataclass(frozen=True, slots=True)
class CircuitMetrics:
    """A snapshot of a circuit breaker, from `CircuitBreaker.metrics`.

    Attributes:
        name: the breaker's name.
        state: the state at the time of the snapshot.
        since: when the breaker entered ``state``, in seconds of its clock's ``monotonic()``.
        calls: calls in the window (ignored and cancelled calls are not counted).
        failures: failed calls in the window.
        slow_calls: calls in the window that took at least ``slow_call_duration``.
        failure_rate: ``failures / calls`` (0.0 with no calls).
        slow_call_rate: ``slow_calls / calls`` (0.0 with no calls).
        consecutive_failures: failures since the last success.
        stale: True when the state lives in a store that could not be read: the snapshot is
            the last one this process saw (its state is the last state seen in the store, its
            counters those of the last successful read, or zeros). Always False in memory.
    """

    name: str
    state: CircuitState
    since: float
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    stale: bool = False


# --------------------------------------------------------------------------------------------
# The backend: a pure state machine


class _Permit:
    """Permission to make one call; identifies the CLOSED or HALF_OPEN period it belongs to.

    One permit object is made per period (not per call), so identity says whether an outcome
    still belongs to the current period; outcomes of calls that started in an earlier period
    are dropped.
    """

    __slots__ = ("trial",)
    rejected = False

    def __init__(self, trial: bool) -> None:
        self.trial = trial


class _Rejection:
    """The backend refused a call: the state it is in and the seconds until a trial."""

    __slots__ = ("retry_after", "state")
    rejected = True

    def __init__(self, state: CircuitState, retry_after: float) -> None:
        self.state = state
        self.retry_after = retry_after


_PASS = _Permit(False)  # DISABLED: run the call, record nothing
_JUDGED_SUCCESS: tuple[int, BaseException | None] = (SUCCESS, None)

Transition = Callable[[CircuitState, CircuitState], None]


class _Backend(Protocol):
    """The seam between the driver and the state (in memory, or shared through a store).

    ``closed`` is the permit of the current CLOSED period when the backend can hand it out
    without looking at the state or the time (the memory backend can), else None; the driver
    uses it to skip `acquire` on the hot path. A backend whose state lives elsewhere leaves it
    None and answers every `acquire`.
    """

    closed: _Permit | None

    def acquire(self, now: float) -> _Permit | _Rejection: ...

    def record(self, permit: _Permit, outcome: int, duration: float, now: float | None) -> None: ...

    def poll(self, now: float) -> CircuitState: ...

    def snapshot(self, name: str, now: float) -> CircuitMetrics: ...

    def force(self, state: CircuitState, now: float) -> None: ...


class _SharedBackend(_Backend, Protocol):
    """A backend whose state lives in a store: it does I/O, so async calls await these."""

    async def aacquire(self, now: float) -> _Permit | _Rejection: ...

    async def arecord(
        self, permit: _Permit, outcome: int, duration: float, now: float | None
    ) -> None: ...

    async def asnapshot(self, name: str, now: float) -> CircuitMetrics: ...

    async def aforce(self, state: CircuitState, now: float) -> None: ...


class _MemoryBackend:
    """The breaker's state machine in process memory, guarded by one lock.

    Every method takes ``now`` (seconds on the breaker's clock) and returns at once. State
    changes are reported to ``on_transition`` after the lock is released.
    """

    __slots__ = (
        "_backoff",
        "_base_open_for",
        "_clock",
        "_consecutive",
        "_consecutive_limit",
        "_counter",
        "_delays",
        "_failure_rate",
        "_forced_retry_after",
        "_half_open_calls",
        "_lock",
        "_minimum_calls",
        "_on_transition",
        "_open_until",
        "_ring",
        "_since",
        "_size",
        "_slow_call_duration",
        "_slow_call_rate",
        "_state",
        "_trial",
        "_trials_issued",
        "_trials_passed",
        "_window",
        "closed",
    )

    def __init__(
        self,
        *,
        window: CountWindow | TimeWindow,
        minimum_calls: int,
        failure_rate: float | None,
        slow_call_rate: float | None,
        slow_call_duration: float | None,
        consecutive_failures: int | None,
        open_for: float | OpenBackoff,
        half_open_calls: int,
        on_transition: Transition,
        clock: Callable[[], float],
        now: float,
    ) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._counter: _Counter = window._counter()
        # The ring of a count window, which `record` updates inline; None for a time window.
        self._ring: list[int] | None = None
        self._size = 0
        if isinstance(self._counter, _CountCounter):
            self._ring = self._counter._ring
            self._size = self._counter._size
        self._clock = clock
        self._minimum_calls = minimum_calls
        self._failure_rate = failure_rate
        self._slow_call_rate = slow_call_rate
        self._slow_call_duration = slow_call_duration
        self._consecutive_limit = consecutive_failures
        self._backoff: OpenBackoff | None = None
        if isinstance(open_for, (int, float)):
            self._base_open_for = float(open_for)
        else:
            self._backoff = open_for
            self._base_open_for = 0.0
        # FORCED_OPEN's retry_after, a hint only: open_for, or the first open period.
        self._forced_retry_after = (
            self._base_open_for
            if self._backoff is None
            else float(next(iter(self._backoff.delays()), 0.0))
        )
        self._delays: Iterator[float] | None = None
        self._half_open_calls = half_open_calls
        self._on_transition = on_transition
        self._state = CLOSED
        self._since = now
        self.closed: _Permit | None = _Permit(False)
        self._trial = _Permit(True)
        self._trials_issued = 0
        self._trials_passed = 0
        self._consecutive = 0
        self._open_until = now

    # -- transitions (called with the lock held; they return the old state) -------------------

    def _close(self, now: float) -> CircuitState:
        old = self._state
        self._state = CLOSED
        self._since = now
        self._counter = self._window._counter()
        if isinstance(self._counter, _CountCounter):
            self._ring = self._counter._ring
        self._consecutive = 0
        self._delays = None
        self.closed = _Permit(False)
        return old

    def _open(self, now: float) -> CircuitState:
        old = self._state
        if self._backoff is None:
            delay = self._base_open_for
        else:
            if self._delays is None or old is not HALF_OPEN:
                self._delays = iter(self._backoff.delays())
            try:
                delay = float(next(self._delays))
            except StopIteration:
                delay = self._base_open_for
            if not 0.0 <= delay < float("inf"):  # negative, NaN or infinite
                self._delays = None
                raise ValueError(
                    f"open_for must yield delays >= 0 and finite, got {delay!r} "
                    f"from {self._backoff!r}"
                )
            self._base_open_for = delay  # the last delay: used once the iterator runs out
        self._state = OPEN
        self._since = now
        self._open_until = now + delay
        self.closed = None
        return old

    def _half_open(self, now: float) -> None:
        self._state = HALF_OPEN
        self._since = now
        self._trial = _Permit(True)
        self._trials_issued = 0
        self._trials_passed = 0

    def _other(self, state: CircuitState, now: float) -> CircuitState:
        old = self._state
        self._state = state
        self._since = now
        self.closed = None
        return old

    def _tripped(self) -> bool:
        counter = self._counter
        if self._consecutive_limit is not None and self._consecutive >= self._consecutive_limit:
            return True
        calls = counter.calls
        if calls < self._minimum_calls:
            return False
        if self._failure_rate is not None and counter.failures / calls >= self._failure_rate:
            return True
        return self._slow_call_rate is not None and counter.slow / calls >= self._slow_call_rate

    # -- the interface -------------------------------------------------------------------------

    def acquire(self, now: float) -> _Permit | _Rejection:
        """A permit to call, or a rejection saying why not and for how long."""
        permit = self.closed
        if permit is not None:
            return permit
        with self._lock:
            state = self._state
            if state is CLOSED:
                return self.closed  # type: ignore[return-value]
            if state is DISABLED:
                return _PASS
            if state is FORCED_OPEN:
                return _Rejection(state, self._forced_retry_after)
            moved = False
            if state is OPEN:
                if now < self._open_until:
                    return _Rejection(state, self._open_until - now)
                self._half_open(now)
                moved = True
            if self._trials_issued < self._half_open_calls:
                self._trials_issued += 1
                result: _Permit | _Rejection = self._trial
            else:
                result = _Rejection(HALF_OPEN, 0.0)
        if moved:
            self._on_transition(OPEN, HALF_OPEN)
        return result

    def record(self, permit: _Permit, outcome: int, duration: float, now: float | None) -> None:
        """Count the outcome of a call made with ``permit``; may trip or close the circuit.

        ``now`` may be None when the driver did not need to read the clock (a count window
        without slow-call detection); the backend then reads it only if it changes state.
        """
        if permit.trial:
            self._record_trial(permit, outcome, duration, now)
            return
        if outcome == NEUTRAL:
            return
        slow_limit = self._slow_call_duration
        code = outcome | _SLOW if slow_limit is not None and duration >= slow_limit else outcome
        lock = self._lock
        lock.acquire()  # cheaper than ``with`` on the hot path
        try:
            if permit is not self.closed:
                return  # DISABLED, or the call began in an earlier CLOSED period
            counter = self._counter
            ring = self._ring
            if ring is None:
                counter.add(code, self._clock() if now is None else now)
            else:  # a count window, inlined: the hot path of a healthy breaker
                index = counter._index  # type: ignore[attr-defined]
                if counter.calls == self._size:
                    old_code = ring[index]
                    if old_code:
                        counter.failures -= old_code & 1
                        counter.slow -= old_code >> 1
                else:
                    counter.calls += 1
                ring[index] = code
                index += 1
                counter._index = 0 if index == self._size else index  # type: ignore[attr-defined]
                if code:
                    counter.failures += code & 1
                    counter.slow += code >> 1
            if outcome:
                self._consecutive += 1
            else:
                self._consecutive = 0
                # In a count window a fast success cannot raise a rate, except by bringing the
                # window up to minimum_calls.
                if not code and ring is not None and counter.calls != self._minimum_calls:
                    return
            if not self._tripped():
                return
            old = self._open(self._clock() if now is None else now)
        finally:
            lock.release()
        self._on_transition(old, OPEN)

    def _record_trial(
        self, permit: _Permit, outcome: int, duration: float, now: float | None
    ) -> None:
        slow_limit = self._slow_call_duration
        slow = slow_limit is not None and duration >= slow_limit
        with self._lock:
            if permit is not self._trial or self._state is not HALF_OPEN:
                return  # the trial began in an earlier HALF_OPEN period
            if outcome == NEUTRAL:
                self._trials_issued -= 1  # give the trial slot back
                return
            if now is None:
                now = self._clock()
            if outcome & FAILURE or (slow and self._slow_call_rate is not None):
                old = self._open(now)
                new = OPEN
            else:
                self._trials_passed += 1
                if self._trials_passed < self._half_open_calls:
                    return
                old = self._close(now)
                new = CLOSED
        self._on_transition(old, new)

    def poll(self, now: float) -> CircuitState:
        """The state at ``now``: an OPEN circuit whose open period is over turns HALF_OPEN."""
        state = self._state
        if state is not OPEN or now < self._open_until:
            return state
        with self._lock:
            if self._state is not OPEN or now < self._open_until:
                return self._state
            self._half_open(now)
        self._on_transition(OPEN, HALF_OPEN)
        return HALF_OPEN

    def snapshot(self, name: str, now: float) -> CircuitMetrics:
        """Counters and state at ``now``."""
        self.poll(now)
        with self._lock:
            counter = self._counter
            counter.expire(now)
            calls = counter.calls
            return CircuitMetrics(
                name=name,
                state=self._state,
                since=self._since,
                calls=calls,
                failures=counter.failures,
                slow_calls=counter.slow,
                failure_rate=counter.failures / calls if calls else 0.0,
                slow_call_rate=counter.slow / calls if calls else 0.0,
                consecutive_failures=self._consecutive,
            )

    def force(self, state: CircuitState, now: float) -> None:
        """Move to an operator state: CLOSED (reset), FORCED_OPEN or DISABLED."""
        with self._lock:
            old = self._close(now) if state is CLOSED else self._other(state, now)
        if old is not state:
            self._on_transition(old, state)


# --------------------------------------------------------------------------------------------
# The driver


# Open ``with breaker:`` blocks: (permit, start time).
_entries: ScopeStack[tuple[_Permit, float | None]] = ScopeStack("resilient.circuit_breaker")


def _check_rate(value: float | None, argument: str, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number, got {value!r}")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{argument} must be in (0, 1], got {value!r}")
    return float(value)


def _check_int(value: object, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{argument} must be >= {minimum}, got {value!r}")
    return value


def _check_types(value: object, argument: str) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{argument} must be exception types, got {value!r}")
    return types


class CircuitBreaker(Policy):
    """Stops calls to a dependency that is failing, then lets a few trial calls probe it.

    CLOSED, calls run and their outcomes fill a sliding ``window``. Once the window holds at
    least ``minimum_calls`` calls and the failure rate reaches ``failure_rate`` (or the rate of
    calls slower than ``slow_call_duration`` reaches ``slow_call_rate``), or when
    ``consecutive_failures`` calls in a row failed, the circuit opens: calls are rejected with
    `CircuitOpenError` for ``open_for`` seconds. Then it is HALF_OPEN: exactly
    ``half_open_calls`` concurrent trial calls are let through and every other call is
    rejected. If all trials succeed the circuit closes with a fresh window; if any fails it
    opens again (for the next delay when ``open_for`` is a backoff).

    A call counts as a failure when it raises an exception matching ``failure_on`` that is not
    one of ``ignore``, or when ``failure_result`` is true of its result. Exceptions matching
    ``ignore``, rejections by resilient's own policies (`resilient.Rejected`: a full bulkhead or
    a rate limit inside the breaker, an inner breaker), and cancellation, `KeyboardInterrupt`,
    `SystemExit` (every `BaseException` that is not an `Exception`) count neither way; a trial
    ended that way gives its slot back. The exception is a call cancelled because the deadline in
    scope expired (a `resilient.timeout` around the breaker), or one raising `DeadlineExceeded`
    counted as a failure: the dependency timed out, so it counts as a failure and a slow call.
    Other exceptions count as successes (the dependency answered).

    Works as a decorator, with `call` / `acall`, and as ``with`` / ``async with``.

    Args:
        name: the breaker's name, in errors, events and metrics.
        failure_rate: trip when failures / calls reaches this (in (0, 1]); None: never on
            the failure rate.
        slow_call_rate: trip when slow calls / calls reaches this (in (0, 1]); None (default):
            never on slowness.
        slow_call_duration: a call lasting at least this many seconds is slow (required with
            ``slow_call_rate``).
        consecutive_failures: also trip after this many failures in a row (None: off).
        window: `CountWindow` (default ``CountWindow(100)``) or `TimeWindow`.
        minimum_calls: the rates are not judged before the window holds this many calls
            (capped at the size of a `CountWindow`, which never holds more).
        open_for: seconds OPEN before the first trial (default 30), or a backoff whose
            ``delays()`` iterator gives the open period of the 1st, 2nd, ... opening in a row
            (for example `resilient.Backoff`; any object with such a ``delays()`` works).
        half_open_calls: trial calls in HALF_OPEN (default 1); all must succeed to close.
        failure_on: exception type, tuple of types, or predicate ``(exc) -> bool`` saying which
            exceptions are failures (default `Exception`).
        ignore: exception types that count neither way (e.g. client errors).
        failure_result: predicate on a call's result; true counts the call as a failure.
        clock: where time is read (default the system clock).
        store: where the state lives: None or a `resilient.stores.MemoryStore` keeps it in
            this object; a `resilient.stores.RedisStore` shares one breaker (state and window)
            between every process using the same Redis, prefix and name. See
            docs/circuit-breaker.md for the shared breaker's rules.
        on_state_change: called with each `CircuitStateChanged` event of this breaker, in the
            thread or task that caused the change, whether or not anyone subscribed to events;
            an exception it raises is reported through `sys.unraisablehook` and never breaks
            the call (as for event subscribers).

    Raises:
        ValueError: an argument is out of range (the message names it).
        TypeError: an argument has the wrong type.
    """

    __slots__ = (
        "_backend",
        "_failure_on",
        "_failure_predicate",
        "_failure_result",
        "_ignore",
        "_monotonic",
        "_on_state_change",
        "_remote",
        "_timed",
        "clock",
        "name",
        "store",
    )

    kind = "circuit_breaker"

    def __init__(
        self,
        name: str,
        *,
        failure_rate: float | None = 0.5,
        slow_call_rate: float | None = None,
        slow_call_duration: float | None = None,
        consecutive_failures: int | None = None,
        window: CountWindow | TimeWindow | None = None,
        minimum_calls: int = 10,
        open_for: float | OpenBackoff = 30.0,
        half_open_calls: int = 1,
        failure_on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = Exception,
        ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
        failure_result: Callable[[Any], bool] | None = None,
        clock: Clock | None = None,
        store: MemoryStore | RedisStore | None = None,
        on_state_change: Callable[[CircuitStateChanged], object] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        if not name:
            raise ValueError("name must not be empty")
        self.name = name
        if on_state_change is not None and not callable(on_state_change):
            raise TypeError(f"on_state_change must be callable, got {on_state_change!r}")
        self._on_state_change = on_state_change
        failure_rate = _check_rate(failure_rate, "failure_rate")
        slow_call_rate = _check_rate(slow_call_rate, "slow_call_rate")
        if slow_call_duration is not None:
            if isinstance(slow_call_duration, bool) or not isinstance(
                slow_call_duration, (int, float)
            ):
                raise TypeError(f"slow_call_duration must be a number, got {slow_call_duration!r}")
            if not slow_call_duration > 0:
                raise ValueError(f"slow_call_duration must be > 0, got {slow_call_duration!r}")
            slow_call_duration = float(slow_call_duration)
        if slow_call_rate is not None and slow_call_duration is None:
            raise ValueError("slow_call_duration must be set when slow_call_rate is set")
        if consecutive_failures is not None:
            _check_int(consecutive_failures, "consecutive_failures", 1)
        if failure_rate is None and slow_call_rate is None and consecutive_failures is None:
            raise ValueError(
                "failure_rate, slow_call_rate and consecutive_failures are all None: "
                "the circuit could never open"
            )
        if window is None:
            window = CountWindow()
        elif not isinstance(window, (CountWindow, TimeWindow)):
            raise TypeError(f"window must be a CountWindow or a TimeWindow, got {window!r}")
        _check_int(minimum_calls, "minimum_calls", 1)
        if isinstance(window, CountWindow) and minimum_calls > window.size:
            # A count window never holds more than its size (resilience4j caps it alike).
            minimum_calls = window.size
        if isinstance(open_for, bool):
            raise TypeError(f"open_for must be seconds or a backoff, got {open_for!r}")
        if isinstance(open_for, (int, float)):
            if not 0 <= open_for < float("inf"):
                raise ValueError(f"open_for must be >= 0 and finite, got {open_for!r}")
        elif not callable(getattr(open_for, "delays", None)):
            raise TypeError(
                f"open_for must be seconds or an object with a delays() method, got {open_for!r}"
            )
        _check_int(half_open_calls, "half_open_calls", 1)
        self._failure_on: tuple[type[BaseException], ...] = ()
        self._failure_predicate: Callable[[BaseException], bool] | None = None
        if isinstance(failure_on, (tuple, type)):
            self._failure_on = _check_types(failure_on, "failure_on")
        elif callable(failure_on):
            self._failure_predicate = failure_on
        else:
            raise TypeError(
                f"failure_on must be exception types or a predicate, got {failure_on!r}"
            )
        self._ignore = _check_types(ignore, "ignore")
        if failure_result is not None and not callable(failure_result):
            raise TypeError(f"failure_result must be callable, got {failure_result!r}")
        self._failure_result = failure_result
        self.clock: Clock = check_clock(clock)
        self._monotonic = self.clock.monotonic
        self._timed = slow_call_duration is not None or isinstance(window, TimeWindow)
        settings: dict[str, Any] = {
            "window": window,
            "minimum_calls": minimum_calls,
            "failure_rate": failure_rate,
            "slow_call_rate": slow_call_rate,
            "slow_call_duration": slow_call_duration,
            "consecutive_failures": consecutive_failures,
            "open_for": open_for,
            "half_open_calls": half_open_calls,
            "on_transition": self._transitioned,
            "clock": self._monotonic,
            "now": self._monotonic(),
        }
        self.store = store
        if store is None:
            self._backend: _Backend = _MemoryBackend(**settings)
        else:
            bind = getattr(store, "_bind_circuit_breaker", None)
            if bind is None:
                raise TypeError(f"store must be a MemoryStore or a RedisStore, got {store!r}")
            self._backend = bind(self, settings)
        # The same backend when it does I/O (shared through a store): async calls await it.
        self._remote: _SharedBackend | None = (
            self._backend if getattr(self._backend, "shared", False) else None  # type: ignore[assignment]
        )
        HUB.track(self)  # metrics read the state at scrape time

    # -- state and operators -------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN circuit whose open period is over reads HALF_OPEN).

        With a store that cannot be reached, the last state seen in it (never an error;
        `metrics` says whether it is stale).
        """
        return self._backend.poll(self._monotonic())

    def metrics(self) -> CircuitMetrics:
        """A snapshot of the state and the window's counters.

        With a store that cannot be reached, the last snapshot seen, with ``stale=True``
        (never an error, whatever the store's ``on_error``).
        """
        return self._backend.snapshot(self.name, self._monotonic())

    def force_open(self) -> None:
        """Reject every call until `reset` (state FORCED_OPEN)."""
        self._backend.force(FORCED_OPEN, self._monotonic())

    def disable(self) -> None:
        """Let every call through and count nothing until `reset` (state DISABLED)."""
        self._backend.force(DISABLED, self._monotonic())

    def reset(self) -> None:
        """Back to CLOSED with an empty window, from any state."""
        self._backend.force(CLOSED, self._monotonic())

    async def ametrics(self) -> CircuitMetrics:
        """Async `metrics`: with a `RedisStore` holding an async client, the way to read Redis."""
        if self._remote is not None:
            return await self._remote.asnapshot(self.name, self._monotonic())
        return self.metrics()

    async def aforce_open(self) -> None:
        """Async `force_open`."""
        await self._aforce(FORCED_OPEN)

    async def adisable(self) -> None:
        """Async `disable`."""
        await self._aforce(DISABLED)

    async def areset(self) -> None:
        """Async `reset`."""
        await self._aforce(CLOSED)

    async def _aforce(self, state: CircuitState) -> None:
        if self._remote is not None:
            await self._remote.aforce(state, self._monotonic())
        else:
            self._backend.force(state, self._monotonic())

    def _transitioned(self, old: CircuitState, new: CircuitState) -> None:
        listener = self._on_state_change
        if listener is None:
            if HUB.active:
                HUB.emit(CircuitStateChanged(self.kind, self.name, old.value, new.value))
            return
        event = CircuitStateChanged(self.kind, self.name, old.value, new.value)
        if HUB.active:
            HUB.emit(event)
        try:
            listener(event)
        except Exception as exc:  # like a subscriber's: must not break the call
            sys.unraisablehook(_Unraisable(exc, f"on_state_change of {self!r}", event))

    # -- calls ---------------------------------------------------------------------------------

    def _reject(self, rejection: _Rejection) -> CircuitOpenError:
        retry_after = max(0.0, rejection.retry_after)
        if HUB.active:
            HUB.emit(CallRejected(self.kind, self.name, rejection.state.value, retry_after))
        if rejection.state is HALF_OPEN:
            return CircuitOpenError(
                self.name,
                retry_after,
                f"circuit {self.name!r} is half-open and every trial call is taken; "
                f"retry after {retry_after:.3f}s",
            )
        return CircuitOpenError(self.name, retry_after)

    def _classify(self, exc: BaseException) -> int:
        if not isinstance(exc, Exception):
            # Cancelled because the deadline in scope expired: the dependency timed out.
            # Cancelled for any other reason, or interrupted: says nothing about it.
            return TIMEOUT if is_cancellation(exc) and deadline_passed() else NEUTRAL
        if (
            # A rejection by one of resilient's own policies (a full bulkhead inside this
            # breaker, an inner breaker, a rate limiter) says nothing about the dependency.
            isinstance(exc, Rejected) or (self._ignore and isinstance(exc, self._ignore))
        ):
            return NEUTRAL
        predicate = self._failure_predicate
        failed = isinstance(exc, self._failure_on) if predicate is None else predicate(exc)
        if not failed:
            return SUCCESS
        return TIMEOUT if isinstance(exc, DeadlineExceeded) else FAILURE

    # A predicate of the user's (``failure_on``, ``failure_result``) may raise. The call's
    # outcome is then recorded as NEUTRAL, so a trial slot is never lost, before the predicate's
    # error propagates. ``_judge*`` return (outcome, the predicate's error or None).

    def _judge(self, exc: BaseException | None) -> tuple[int, BaseException | None]:
        if exc is None:
            return _JUDGED_SUCCESS
        try:
            return self._classify(exc), None
        except BaseException as broken:
            return NEUTRAL, broken

    def _judge_result(self, result: object) -> tuple[int, BaseException | None]:
        failure_result = self._failure_result
        if failure_result is None:
            return _JUDGED_SUCCESS
        try:
            return (FAILURE if failure_result(result) else SUCCESS), None
        except BaseException as broken:
            return NEUTRAL, broken

    def _settle(
        self, permit: _Permit, start: float | None, judged: tuple[int, BaseException | None]
    ) -> None:
        outcome, broken = judged
        self._finish(permit, outcome, start)
        if broken is not None:
            raise broken

    async def _asettle(
        self,
        remote: _SharedBackend,
        permit: _Permit,
        start: float,
        judged: tuple[int, BaseException | None],
    ) -> None:
        outcome, broken = judged
        end = self._monotonic()
        await remote.arecord(permit, outcome, end - start, end)
        if broken is not None:
            raise broken

    def _finish(self, permit: _Permit, outcome: int, start: float | None) -> None:
        if self._timed and start is not None:
            end = self._monotonic()
            self._backend.record(permit, outcome, end - start, end)
        else:
            # Not `start`: a transition this outcome causes happens now, at the call's end
            # (the backend reads the clock only then).
            self._backend.record(permit, outcome, 0.0, None)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` if the circuit allows it, and count the outcome.

        Raises:
            CircuitOpenError: the circuit is open, or half-open with every trial slot taken.
        """
        backend = self._backend
        permit: Any = backend.closed
        if permit is None or self._timed:
            start = self._monotonic()
            if permit is None:
                permit = backend.acquire(start)
                if permit.rejected:
                    raise self._reject(permit)
        else:
            start = None  # a closed count window without slow calls needs no clock
        try:
            result = (
                fn(*args, **kwargs) if not HUB.timing else HUB.timed(self, None, fn, args, kwargs)
            )
        except BaseException as exc:
            self._settle(permit, start, self._judge(exc))
            raise
        self._settle(permit, start, self._judge_result(result))
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` if the circuit allows it, and count the outcome.

        Raises:
            CircuitOpenError: the circuit is open, or half-open with every trial slot taken.
        """
        if self._remote is not None:
            return await self._acall_shared(self._remote, fn, *args, **kwargs)
        backend = self._backend
        permit: Any = backend.closed
        if permit is None or self._timed:
            start = self._monotonic()
            if permit is None:
                permit = backend.acquire(start)
                if permit.rejected:
                    raise self._reject(permit)
        else:
            start = None  # a closed count window without slow calls needs no clock
        try:
            result = await (
                fn(*args, **kwargs) if not HUB.timing else HUB.atimed(self, None, fn, args, kwargs)
            )
        except BaseException as exc:
            self._settle(permit, start, self._judge(exc))
            raise
        self._settle(permit, start, self._judge_result(result))
        return result

    async def _acall_shared(
        self,
        remote: _SharedBackend,
        fn: Callable[P, Awaitable[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        # `acall` with a backend that does I/O: acquiring and recording are awaited.
        start = self._monotonic()
        permit = await remote.aacquire(start)
        if isinstance(permit, _Rejection):
            raise self._reject(permit)
        try:
            result = await (
                fn(*args, **kwargs) if not HUB.timing else HUB.atimed(self, None, fn, args, kwargs)
            )
        except BaseException as exc:
            await self._asettle(remote, permit, start, self._judge(exc))
            raise
        await self._asettle(remote, permit, start, self._judge_result(result))
        return result

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        # The same steps as `call`, with the attribute lookups hoisted out of the call path.
        backend = self._backend
        acquire = backend.acquire
        record = backend.record
        monotonic = self._monotonic
        judge = self._judge
        judge_result = self._judge_result
        settle = self._settle
        reject = self._reject
        failure_result = self._failure_result
        timed = self._timed
        key = (self.kind, self.name)
        system = monotonic is time.monotonic  # calls timed inline in nanoseconds

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            permit: Any = backend.closed
            if permit is None or timed:
                start = monotonic()
                if permit is None:
                    permit = acquire(start)
                    if permit.rejected:
                        raise reject(permit)
            else:
                start = None  # a closed count window without slow calls needs no clock
            try:
                if not HUB.timing:
                    result = fn(*args, **kwargs)
                elif (success := HUB.counting.get(key)) is None:
                    nanos = HUB.nanos.get(key) if system else None
                    if nanos is None:  # not bound yet, or several sinks, or another clock
                        result = HUB.timed(self, None, fn, args, kwargs)
                    else:  # one sink that takes nanoseconds: timed inline (`_Hub.nanos`)
                        begun = monotonic_ns()
                        try:
                            result = fn(*args, **kwargs)
                        except BaseException as exc:
                            clocked_failure(key, begun, exc)
                            raise
                        nanos.append(monotonic_ns() - begun)
                        if len(nanos) >= FOLD_AT:
                            fold(key)
                else:  # counted without a duration: inline, the cheapest way
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        count_failure(key, exc)
                        raise
                    success()
            except BaseException as exc:
                settle(permit, start, judge(exc))
                raise
            if failure_result is not None:
                settle(permit, start, judge_result(result))
            elif timed:
                end = monotonic()
                record(permit, SUCCESS, end - start, end)  # type: ignore[operator]
            else:
                record(permit, SUCCESS, 0.0, None)
            return result

        return wrapper

    # -- context managers ----------------------------------------------------------------------

    def _enter(self, frame: FrameType | None) -> Self:
        backend = self._backend
        permit: Any = backend.closed
        if permit is None or self._timed:
            start: float | None = self._monotonic()
            if permit is None:
                permit = backend.acquire(start)  # type: ignore[arg-type]
                if permit.rejected:
                    raise self._reject(permit)
        else:
            start = None  # a closed count window without slow calls needs no clock
        _entries.push(self, (permit, start), frame)
        return self

    def __enter__(self) -> Self:
        # The steps of `_enter`, inlined: this is the hot path of ``with breaker:``.
        backend = self._backend
        permit: Any = backend.closed
        if permit is None or self._timed:
            start: float | None = self._monotonic()
            if permit is None:
                permit = backend.acquire(start)  # type: ignore[arg-type]
                if permit.rejected:
                    raise self._reject(permit)
        else:
            start = None  # a closed count window without slow calls needs no clock
        _entries.push(self, (permit, start), caller_frame(1))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, start = _entries.pop(self, caller_frame(1))
        if exc is None:  # the success path, kept inline: `_settle` of a success
            if self._timed and start is not None:
                end = self._monotonic()
                self._backend.record(permit, SUCCESS, end - start, end)
            else:
                self._backend.record(permit, SUCCESS, 0.0, None)
            return
        self._settle(permit, start, self._judge(exc))

    async def __aenter__(self) -> Self:
        remote = self._remote
        if remote is None:
            return self._enter(caller_frame(1))
        frame = caller_frame(1)
        start = self._monotonic()
        permit = await remote.aacquire(start)
        if isinstance(permit, _Rejection):
            raise self._reject(permit)
        _entries.push(self, (permit, start), frame)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, start = _entries.pop(self, caller_frame(1))
        remote = self._remote
        if remote is None:
            self._settle(permit, start, self._judge(exc))
            return
        await self._asettle(remote, permit, start, self._judge(exc))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        if self._remote is not None:  # no I/O in a repr
            return f"CircuitBreaker({self.name!r}, store={self.store!r})"
        return f"CircuitBreaker({self.name!r}, state={self._backend.poll(self._monotonic())})"
