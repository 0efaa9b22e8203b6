"""Per-policy call counters for the exporters, kept without locks on the call path.

Each (policy, name) has its own counters, `itertools.count` objects: ``next(counter)`` runs in
C under the GIL, so concurrent increments are never lost (``n += 1`` on a Python int can be:
load, add and store are three steps another thread can come between). The histogram takes
durations two ways: integer nanoseconds appended by a policy that times the call inline to a
C buffer (`resilient._speedups.Durations`; a list without the extension, whose ``append`` is
atomic too), counted into the buckets and an integer sum in batches under a lock; and float
seconds, one bucket counter step each and a list of pending
durations that a lock-holding fold adds up now and then. Exporters read them at scrape or
collection time.
"""

from __future__ import annotations

import itertools
import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from .._circuit_breaker import CircuitState
from .._events import CallSink, Nanos
from .._native import load_speedups

# Every state a breaker can report, so each gets its 0/1 series from the first scrape; shared by
# both exporters.
STATES = tuple(state.value for state in CircuitState)

__all__: list[str] = []

#: The C buffer of durations (`resilient._speedups.Durations`), or None for a list (the tests
#: swap it to run both).
_Durations: Callable[[], Any] | None = getattr(load_speedups(), "Durations", None)

# A bucket's counter folds the pending durations into the sum every this many calls (+1), so
# the list of durations not yet added up stays short even if nobody reads them.
_FOLD_MASK = 1023


def _value(counter: Any) -> int:
    """The next value of an `itertools.count`, which is how many times it was advanced."""
    text = repr(counter)  # "count(12)"
    return int(text[6:-1])


class _Counts(CallSink):
    """The calls of one policy, by outcome; no durations."""

    __slots__ = ("_lock", "name", "outcomes", "policy", "success")

    durations = False
    raises = False

    def __init__(self, policy: str, name: str) -> None:
        self.policy = policy
        self.name = name
        self._lock = threading.Lock()
        ok = itertools.count()
        self.outcomes: dict[str, Any] = {"success": ok}
        #: `CallSink.success`, straight to C: a successful call costs one counter step.
        self.success: Callable[[], object] = ok.__next__

    def _outcome(self, outcome: str) -> Any:
        counter = self.outcomes.get(outcome)
        if counter is None:
            with self._lock:
                counter = self.outcomes.setdefault(outcome, itertools.count())
        return counter

    def succeeded(self, duration: float) -> None:
        self.success()

    def record(self, outcome: str, duration: float) -> None:
        next(self._outcome(outcome))

    def counts(self) -> list[tuple[str, int]]:
        """(outcome, calls) for each outcome seen at least once."""
        counts = [(outcome, _value(counter)) for outcome, counter in list(self.outcomes.items())]
        return [(outcome, count) for outcome, count in counts if count]


class _Timings(_Counts):
    """The calls of one policy, by outcome, and a histogram of their durations.

    Two ways in. A policy on the system clock appends a successful call's duration in integer
    nanoseconds to `nanos` (one C call; see `CallSink.nanos`) and has the sink `fold` them
    now and then: a fold counts the batch into the buckets (in C in one pass, or in Python by
    sorting it and bisecting at each bound) and adds it up into an integer sum, exact. Any
    other call comes through `succeeded` or `record` in float seconds (other clocks, failures,
    several sinks): per-bucket counters and a list of pending durations, folded into a float
    sum.
    """

    __slots__ = (
        "_bounds",
        "_bounds_ns",
        "_buckets",
        "_ns_buckets",
        "_ns_calls",
        "_ns_sum",
        "_pending",
        "_sum",
        "nanos",
    )

    durations = True

    def __init__(self, policy: str, name: str, bounds: tuple[float, ...]) -> None:
        super().__init__(policy, name)
        self._bounds = bounds
        # A duration of d ns is at most bound b seconds exactly when d <= floor(b * 10**9).
        self._bounds_ns = tuple(math.floor(Fraction(b) * 10**9) for b in bounds[:-1])
        self._buckets = [itertools.count() for _ in bounds]
        self._pending: list[float] = []
        self._sum = 0.0
        # A list, or the C buffer: the same appends and len(), but a policy in C stores a
        # duration there without making an int object, and `fold` drains it in one pass.
        self.nanos: Nanos = _Durations() if _Durations is not None else []
        # Folded from ``nanos``, under the lock: cumulative counts per finite bound, the
        # number of calls and their total duration in nanoseconds.
        self._ns_buckets = [0] * len(self._bounds_ns)
        self._ns_calls = 0
        self._ns_sum = 0

    def succeeded(self, duration: float) -> None:
        self.success()
        self._pending.append(duration)
        if not next(self._buckets[bisect_left(self._bounds, duration)]) & _FOLD_MASK:
            self._fold_seconds()

    def record(self, outcome: str, duration: float) -> None:
        next(self._outcome(outcome))
        self._pending.append(duration)
        if not next(self._buckets[bisect_left(self._bounds, duration)]) & _FOLD_MASK:
            self._fold_seconds()

    def fold(self) -> None:
        """Count the durations appended to `nanos` into the buckets and the sum."""
        nanos = self.nanos
        with self._lock:
            # Other threads may append meanwhile, never remove: the first ``n`` stay put.
            n = len(nanos)
            if not n:
                return
            counts = self._ns_buckets
            if not isinstance(nanos, list):
                # The C buffer: taken out whole (appends made since `len` included), counted
                # in one pass, without the sort below (which costs more than a timed call).
                tallied, n, total = nanos.drain(self._bounds_ns)  # type: ignore[attr-defined]
                for i, count in enumerate(tallied):
                    counts[i] += count
            else:
                batch = nanos[:n]
                del nanos[:n]
                batch.sort()
                for i, bound in enumerate(self._bounds_ns):
                    counts[i] += bisect_right(batch, bound)
                total = sum(batch)
            self._ns_calls += n
            self._ns_sum += total

    def _fold_seconds(self) -> float:
        """Add the pending durations to the sum (only here are they removed); the sum."""
        with self._lock:
            pending = self._pending
            total = self._sum
            while pending:
                total += pending.pop()
            self._sum = total
            return total

    def counts(self) -> list[tuple[str, int]]:
        """(outcome, calls) for each outcome seen at least once."""
        self.fold()
        with self._lock:
            timed = self._ns_calls
        counts = [(outcome, _value(counter)) for outcome, counter in list(self.outcomes.items())]
        return [
            (outcome, count + timed if outcome == "success" else count)
            for outcome, count in counts
            if count or (outcome == "success" and timed)
        ]

    def histogram(self) -> tuple[list[tuple[float, int]], float]:
        """(upper bound, cumulative count) for each bucket, and the sum of the durations."""
        self.fold()
        total = self._fold_seconds()
        with self._lock:
            ns_buckets = [*self._ns_buckets, self._ns_calls]
            ns_sum = self._ns_sum
        running = 0
        cumulative = []
        for bound, counter, timed in zip(self._bounds, self._buckets, ns_buckets, strict=True):
            running += _value(counter)
            cumulative.append((bound, running + timed))
        return cumulative, total + ns_sum / 1e9
