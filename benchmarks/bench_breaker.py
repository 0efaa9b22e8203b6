"""Circuit breaker, closed and healthy: the cost of one successful call through the breaker.

Peers: pybreaker and circuitbreaker (fabfuel), each as a decorator with default settings.
Targets: at most 0.5 µs per call (count window), no slower than circuitbreaker, and 3x faster
than pybreaker.
"""

from __future__ import annotations

import circuitbreaker
import pybreaker

from resilient import CircuitBreaker, CountWindow, TimeWindow

from ._harness import Report, measure

GROUP = "circuit breaker: closed, success (sync)"


def work() -> int:
    return 1


def run(report: Report) -> None:
    ours = CircuitBreaker("bench", window=CountWindow(100))(work)
    ours_time = CircuitBreaker("bench-time", window=TimeWindow(30))(work)
    breaker = CircuitBreaker("bench-call")
    pyb = pybreaker.CircuitBreaker()(work)
    fabfuel = circuitbreaker.circuit(work)

    report.add(GROUP, "bare call", measure(work))
    seconds = report.add(
        GROUP, "resilient CircuitBreaker (CountWindow)", measure(ours), baseline=True
    )
    report.add(GROUP, "resilient CircuitBreaker (TimeWindow)", measure(ours_time))
    report.add(GROUP, "resilient CircuitBreaker.call", measure(lambda: breaker.call(work)))
    fab = report.add(GROUP, "circuitbreaker", measure(fabfuel))
    py = report.add(GROUP, "pybreaker", measure(pyb))

    report.check(
        "breaker: closed success path <= 0.5 us (count window)",
        seconds <= 0.5e-6,
        f"{seconds * 1e9:.0f} ns",
    )
    report.check(
        "breaker: at least as fast as circuitbreaker",
        seconds <= fab,
        f"{seconds * 1e9:.0f} ns vs {fab * 1e9:.0f} ns",
    )
    report.check(
        "breaker: 3x faster than pybreaker",
        seconds * 3 <= py,
        f"{py / seconds:.1f}x",
    )
