"""Adaptive bulkhead: a concurrency limit learned from latency and errors.

Admission is the `Bulkhead` machinery (slots, FIFO waiters, deadlines); only the limit moves.
Each finished call is a sample ``(rtt, inflight, dropped)`` fed to a pure limit algorithm, after
Netflix's concurrency-limits library:

* ``"aimd"``: additive increase, multiplicative decrease. A failed call, or one slower than
  ``latency_threshold``, multiplies the limit by ``backoff_ratio``; a healthy call while at least
  half the limit is in use adds 1.
* ``"gradient"`` (Gradient2): compares the latency of each call with a long-term exponential
  average. ``gradient = clamp(tolerance * long_rtt / rtt, 0.5, 1.0)``; the new limit is
  ``limit * gradient + sqrt(limit)``, smoothed by ``smoothing``. When latency rises the gradient
  falls below 1 and the limit shrinks; when latency is at its long-term level the ``sqrt``
  headroom lets it grow. If the long-term average is over twice the current latency (latency
  has recovered), the average decays quickly towards it. Failures multiply the limit by
  ``backoff_ratio`` as in AIMD.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from typing_extensions import ParamSpec, Self

from ._bulkhead import Bulkhead
from ._clock import Clock
from ._deadline import deadline_passed, is_cancellation
from ._events import HUB, LimitChanged
from ._scopes import ScopeStack, caller_frame

__all__ = ["AdaptiveBulkhead"]

P = ParamSpec("P")
R = TypeVar("R")


class _Aimd:
    __slots__ = ("backoff_ratio", "latency_threshold")

    def __init__(self, backoff_ratio: float, latency_threshold: float) -> None:
        self.backoff_ratio = backoff_ratio
        self.latency_threshold = latency_threshold

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:
        if dropped or rtt > self.latency_threshold:
            return limit * self.backoff_ratio
        if inflight * 2 >= limit:
            return limit + 1.0
        return limit


class _Gradient:
    __slots__ = ("_count", "backoff_ratio", "long_rtt", "long_window", "smoothing", "tolerance")

    WARMUP = 10

    def __init__(
        self, backoff_ratio: float, tolerance: float, smoothing: float, long_window: int
    ) -> None:
        self.backoff_ratio = backoff_ratio
        self.tolerance = tolerance
        self.smoothing = smoothing
        self.long_window = long_window
        self.long_rtt = 0.0
        self._count = 0

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:
        if dropped:
            return limit * self.backoff_ratio
        # The long-term average: a plain mean while warming up, then exponential.
        self._count += 1
        if self._count <= self.WARMUP:
            self.long_rtt += (rtt - self.long_rtt) / self._count
        else:
            self.long_rtt += (rtt - self.long_rtt) / self.long_window
        long_rtt = self.long_rtt
        if rtt <= 0.0:
            return limit
        if long_rtt / rtt > 2.0:  # latency recovered: let the average catch up quickly
            self.long_rtt = long_rtt = long_rtt * 0.95
        if inflight < limit / 2:
            return limit  # too little traffic to judge the limit
        gradient = max(0.5, min(1.0, self.tolerance * long_rtt / rtt))
        new = limit * gradient + math.sqrt(limit)
        return limit * (1.0 - self.smoothing) + new * self.smoothing


# Open ``with`` blocks: (start time, calls in flight at the start).
_starts: ScopeStack[tuple[float, int]] = ScopeStack("resilient.adaptive_bulkhead")


def _check_fraction(value: float, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number, got {value!r}")
    if not 0.0 < value < 1.0:
        raise ValueError(f"{argument} must be in (0, 1), got {value!r}")
    return float(value)


class AdaptiveBulkhead(Bulkhead):
    """A bulkhead whose limit adapts to observed latency and errors.

    Calls are admitted exactly as by `Bulkhead` (FIFO waiting up to ``max_waiting`` callers for
    at most ``max_wait`` seconds, never past the deadline), against a limit that falls when
    latency rises or calls fail and recovers while they are healthy, between ``minimum`` and
    ``maximum``. Every change of `limit` emits a `LimitChanged` event. Use it for services that
    must shed load before they fall over.

    Args:
        initial: the starting limit.
        minimum: the limit never goes below this (>= 1).
        maximum: the limit never goes above this.
        algorithm: ``"aimd"`` or ``"gradient"`` (Gradient2); see the module documentation.
        latency_threshold: AIMD: a call slower than this many seconds counts as a drop
            (default 5.0).
        backoff_ratio: the factor applied to the limit on a drop (default 0.9).
        tolerance: gradient: how much latency may rise over its long-term average before the
            limit shrinks (default 1.5, i.e. 50 %).
        smoothing: gradient: weight of each new estimate (default 0.2).
        long_window: gradient: samples in the long-term latency average (default 600).
        failure_on: exception types that count as drops (default `Exception`); cancellation
            and other `BaseException` s are not samples at all.
        max_waiting: how many callers may queue for a slot (default 0).
        max_wait: the longest a caller queues, in seconds (None: up to its deadline).
        name: used in errors, events and metrics (default ``"adaptive_bulkhead"``).
        clock: where latency is measured (default the system clock).

    Raises:
        ValueError: an argument is out of range (the message names it).
    """

    __slots__ = ("_algorithm", "_estimate", "_failure_on", "_maximum", "_minimum", "_monotonic")

    kind = "adaptive_bulkhead"

    def __init__(
        self,
        initial: int = 20,
        minimum: int = 1,
        maximum: int = 200,
        algorithm: str = "aimd",
        *,
        latency_threshold: float = 5.0,
        backoff_ratio: float = 0.9,
        tolerance: float = 1.5,
        smoothing: float = 0.2,
        long_window: int = 600,
        failure_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        max_waiting: int = 0,
        max_wait: float | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        for argument, value in (("initial", initial), ("minimum", minimum), ("maximum", maximum)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{argument} must be an int, got {value!r}")
        if minimum < 1:
            raise ValueError(f"minimum must be >= 1, got {minimum!r}")
        if maximum < minimum:
            raise ValueError(f"maximum must be >= minimum ({minimum}), got {maximum!r}")
        if not minimum <= initial <= maximum:
            raise ValueError(f"initial must be between {minimum} and {maximum}, got {initial!r}")
        backoff_ratio = _check_fraction(backoff_ratio, "backoff_ratio")
        if algorithm == "aimd":
            if isinstance(latency_threshold, bool) or not isinstance(
                latency_threshold, (int, float)
            ):
                raise TypeError(f"latency_threshold must be a number, got {latency_threshold!r}")
            if not latency_threshold > 0:
                raise ValueError(f"latency_threshold must be > 0, got {latency_threshold!r}")
            self._algorithm: _Aimd | _Gradient = _Aimd(backoff_ratio, float(latency_threshold))
        elif algorithm == "gradient":
            if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
                raise TypeError(f"tolerance must be a number, got {tolerance!r}")
            if not tolerance >= 1.0:
                raise ValueError(f"tolerance must be >= 1, got {tolerance!r}")
            smoothing = _check_fraction(smoothing, "smoothing")
            if isinstance(long_window, bool) or not isinstance(long_window, int):
                raise TypeError(f"long_window must be an int, got {long_window!r}")
            if long_window < 1:
                raise ValueError(f"long_window must be >= 1, got {long_window!r}")
            self._algorithm = _Gradient(backoff_ratio, float(tolerance), smoothing, long_window)
        else:
            raise ValueError(f"algorithm must be 'aimd' or 'gradient', got {algorithm!r}")
        types = failure_on if isinstance(failure_on, tuple) else (failure_on,)
        for item in types:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"failure_on must be exception types, got {failure_on!r}")
        self._failure_on = types
        self._minimum = minimum
        self._maximum = maximum
        self._estimate = float(initial)
        self._init_admission(initial, max_waiting, max_wait, name, clock)
        self._monotonic = self.clock.monotonic

    @property
    def limit(self) -> int:
        """The current concurrency limit."""
        return self._limit

    def _retry_after(self) -> float:
        algorithm = self._algorithm
        return algorithm.long_rtt if isinstance(algorithm, _Gradient) else 0.0

    def _sample(self, start: float, inflight: int, exc: BaseException | None) -> None:
        """Feed one finished call to the algorithm and apply the new limit."""
        if exc is None:
            dropped = False
        elif isinstance(exc, Exception):
            dropped = isinstance(exc, self._failure_on)
        elif is_cancellation(exc) and deadline_passed():
            dropped = True  # cancelled because the deadline in scope expired: a timeout
        else:
            return  # cancelled for another reason, or interrupted: says nothing
        rtt = self._monotonic() - start
        lock = self._lock
        lock.acquire()  # not ``with``: cheaper, and this runs after every call
        try:
            estimate = self._algorithm.update(self._estimate, rtt, inflight, dropped)
            estimate = min(float(self._maximum), max(float(self._minimum), estimate))
            self._estimate = estimate
            old = self._limit
            new = int(estimate)
            if new == old:
                return
            # Applied under the same lock as it was computed, so that concurrent samples
            # apply their limits in the order they computed them.
            self._limit = new
            woken = self._grant()
        finally:
            lock.release()
        self._wake(woken)
        if HUB.active:
            HUB.emit(LimitChanged(self.kind, self.name, old, new))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in a slot and learn from its latency and outcome.

        Raises:
            BulkheadFullError: no slot, and no room or time to wait for one.
        """
        self._acquire()
        start = self._monotonic()
        inflight = self.in_use
        try:
            result = (
                fn(*args, **kwargs) if not HUB.timing else HUB.timed(self, None, fn, args, kwargs)
            )
        except BaseException as exc:
            self._release()
            self._sample(start, inflight, exc)
            raise
        self._release()
        self._sample(start, inflight, None)
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` in a slot and learn from its latency and outcome.

        Raises:
            BulkheadFullError: no slot, and no room or time to wait for one.
        """
        await self._aacquire()
        start = self._monotonic()
        inflight = self.in_use
        try:
            result = await (
                fn(*args, **kwargs) if not HUB.timing else HUB.atimed(self, None, fn, args, kwargs)
            )
        except BaseException as exc:
            self._release()
            self._sample(start, inflight, exc)
            raise
        self._release()
        self._sample(start, inflight, None)
        return result

    def __enter__(self) -> Self:
        self._acquire()
        _starts.push(self, (self._monotonic(), self.in_use), caller_frame(1))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        start, inflight = _starts.pop(self, caller_frame(1))
        self._release()
        self._sample(start, inflight, exc)

    async def __aenter__(self) -> Self:
        frame = caller_frame(1)
        await self._aacquire()
        _starts.push(self, (self._monotonic(), self.in_use), frame)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        start, inflight = _starts.pop(self, caller_frame(1))
        self._release()
        self._sample(start, inflight, exc)
