"""A retry budget: retries allowed only up to a fraction of calls, over a sliding time window.

```python
from resilient import RetryBudget
from resilient.testing import FakeClock

budget = RetryBudget(ratio=0.1, minimum_per_second=0.0, window=10.0, clock=FakeClock())
for _ in range(100):
    budget.deposit()  # one per call (a first attempt)
allowed = sum(budget.try_withdraw() for _ in range(50))  # one per retry
assert allowed == 10
```

As in Finagle and Envoy, a budget stops retries from multiplying the load on a service that is
already failing: during an outage, at most ``ratio * calls + minimum_per_second * window``
retries are made per window, instead of ``attempts`` times every call.
"""

from __future__ import annotations

import math
import threading

from ._clock import Clock, check_clock
from ._errors import RetryBudgetExhausted

__all__ = ["RetryBudget"]

_BUCKETS = 10


def _number(value: object, argument: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or (positive and value == 0.0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{argument} must be a finite number {bound}, got {value!r}")
    return value


class RetryBudget:
    """Retries allowed while ``retries < ratio * calls + minimum_per_second * window``.

    Counts are kept over a sliding ``window`` of seconds in 10 buckets (constant memory): the
    window covers the current bucket and the nine before it, so it spans between 0.9 and 1.0
    times ``window``. Share one budget between many `Retry` policies by passing it to each as
    ``budget=``: every first attempt deposits, every retry withdraws. Thread- and task-safe (a
    lock is held only to update the counters).

    Args:
        ratio: retries allowed per call, e.g. 0.2 for 20% extra load at most.
        minimum_per_second: retries always allowed per second, so that a service with few
            calls can still retry.
        window: the length of the sliding window, in seconds.
        clock: where time is read (default: the system clock).

    Raises:
        ValueError: an argument is negative, or ``window`` is not positive.
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_head",
        "_lock",
        "_retries",
        "_width",
        "minimum",
        "minimum_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        minimum_per_second: float = 10.0,
        window: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.ratio = _number(ratio, "ratio")
        self.minimum_per_second = _number(minimum_per_second, "minimum_per_second")
        self.window = _number(window, "window", positive=True)
        if self.window < 1e-6:  # below, bucket numbers (now / width) overflow or divide by 0
            raise ValueError(f"window must be at least 1e-06 seconds, got {window!r}")
        #: Retries always allowed in a window: ``minimum_per_second * window``.
        self.minimum = self.minimum_per_second * self.window
        self._clock = check_clock(clock)
        self._width = self.window / _BUCKETS
        self._lock = threading.Lock()
        self._calls = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        self._head = int(self._clock.monotonic() // self._width)

    def _rotate(self, slot: int) -> None:
        # Called with the lock held: clear the buckets that slid out of the window.
        head = self._head
        if slot <= head:
            return
        calls, retries = self._calls, self._retries
        for index in range(head + 1, min(slot, head + _BUCKETS) + 1):
            calls[index % _BUCKETS] = 0
            retries[index % _BUCKETS] = 0
        self._head = slot

    def deposit(self) -> None:
        """Count one call (a first attempt)."""
        slot = int(self._clock.monotonic() // self._width)
        with self._lock:
            if slot != self._head:
                self._rotate(slot)
            self._calls[slot % _BUCKETS] += 1

    def try_withdraw(self) -> bool:
        """Count one retry and return True if the budget allows it; otherwise return False."""
        slot = int(self._clock.monotonic() // self._width)
        with self._lock:
            if slot != self._head:
                self._rotate(slot)
            if sum(self._retries) < self.ratio * sum(self._calls) + self.minimum:
                self._retries[slot % _BUCKETS] += 1
                return True
            return False

    def withdraw(self) -> None:
        """Like `try_withdraw`, but raise `RetryBudgetExhausted` when the budget refuses.

        For hand-written retry loops that have no earlier exception of their own to re-raise.
        `Retry` itself never raises it: it re-raises the last exception (or returns the last
        result) instead.
        """
        if not self.try_withdraw():
            raise RetryBudgetExhausted(
                f"retry budget exhausted: {self.retries} retries for {self.calls} calls "
                f"in the last {self.window:g}s (ratio {self.ratio:g}, minimum {self.minimum:g})"
            )

    def _totals(self) -> tuple[int, int]:
        slot = int(self._clock.monotonic() // self._width)
        with self._lock:
            if slot != self._head:
                self._rotate(slot)
            return sum(self._calls), sum(self._retries)

    @property
    def calls(self) -> int:
        """Calls (first attempts) counted in the current window."""
        return self._totals()[0]

    @property
    def retries(self) -> int:
        """Retries counted in the current window."""
        return self._totals()[1]

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, minimum_per_second={self.minimum_per_second!r}, "
            f"window={self.window!r})"
        )
