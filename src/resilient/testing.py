"""Helpers for testing code that uses resilient: a fake clock and a no-waiting switch.

```python
from resilient.testing import FakeClock

clock = FakeClock()
clock.sleep(5.0)            # returns at once...
assert clock.monotonic() == 5.0   # ...having moved the clock
```

Pass ``clock=FakeClock()`` to any policy that reads time (retries, breakers, limiters,
timeouts, bulkheads) to make it deterministic, with no real sleeping.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import anyio.lowlevel

from ._clock import switches

__all__ = ["FakeClock", "no_waiting"]


class FakeClock:
    """A clock that only moves when told to, or when someone sleeps on it.

    `sleep` and `asleep` return at once after advancing the clock by the requested time (the
    async one still yields to the event loop once, so other tasks run). Every sleep is recorded
    in `sleeps`. Thread-safe.

    Args:
        start: the initial reading of `monotonic`.
    """

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._now = float(start)
        #: Every sleep requested from this clock, in order.
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The current fake time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (a finite number >= 0)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds must be a number, got {seconds!r}")
        if not 0 <= seconds < math.inf:
            raise ValueError(f"seconds must be >= 0 and finite, got {seconds!r}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` (negative counts as 0) and return immediately."""
        if not seconds < math.inf:  # NaN or infinite: no clock can move by that
            raise ValueError(f"seconds must be a finite number, got {seconds!r}")
        seconds = max(0.0, seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def asleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` and yield to the event loop once."""
        self.sleep(seconds)
        await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


@contextmanager
def no_waiting() -> Iterator[None]:
    """Within this block, retries and other waits of resilient's policies do not sleep.

    Attempts, budgets and events behave exactly as usual; only the waiting is skipped, so tests
    of code decorated with real policies run fast. Applies to every thread; nests.

    ```python
    import resilient
    from resilient.testing import no_waiting

    with no_waiting():
        pass  # call code that retries; it will not sleep between attempts
    ```
    """
    switches.no_waiting += 1
    try:
        yield
    finally:
        switches.no_waiting -= 1
