"""Circuit breaker, closed and healthy: the cost of one successful call through the breaker.

Peers: pybreaker and circuitbreaker (fabfuel), each as a decorator with default settings.
Targets: at most 0.5 µs per call (count window), no slower than circuitbreaker, and 3x faster
than pybreaker.

Shared through Redis: a call through ``CircuitBreaker(store=RedisStore(...))`` is two script
calls (acquire, record), compared with a PING round trip and with pybreaker's
``CircuitRedisStorage``, on one connection each. With the opt-in
``RedisStore(breaker_staleness=...)`` a CLOSED reply is trusted for that long, so a steady
stream of calls costs one script call each (the record). Target for it: at most 1.5x a PING.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import circuitbreaker
import pybreaker

from resilient import CircuitBreaker, CountWindow, TimeWindow

from ._harness import Report, measure, measure_paired

ROOT = Path(__file__).resolve().parent.parent

GROUP = "circuit breaker: closed, success (sync)"


def work() -> int:
    return 1


def run(report: Report) -> None:
    _memory(report)
    _instrumented(report)
    _redis(report)


def _instrumented(report: Report) -> None:
    """The success path with nobody listening, with a plain subscriber, with PrometheusMetrics."""
    from prometheus_client import CollectorRegistry

    from resilient import instrumentation
    from resilient.instrumentation.prometheus import PrometheusMetrics

    ours = CircuitBreaker("bench-instrumented", window=CountWindow(100))(work)
    group = "circuit breaker: closed, success, instrumentation (sync)"
    report.add(group, "bare call", measure(work))
    idle = report.add(
        group, "resilient CircuitBreaker, no subscriber", measure(ours), baseline=True
    )
    seen: list[object] = []
    instrumentation.subscribe(seen.append)  # asks for no CallCompleted: nothing to emit
    try:
        report.add(group, "resilient CircuitBreaker, a plain subscriber", measure(ours))
    finally:
        instrumentation.unsubscribe(seen.append)
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    try:
        exported = report.add(
            group, "resilient CircuitBreaker, PrometheusMetrics (durations on)", measure(ours)
        )
    finally:
        metrics.close()
    _exporter_rows(report, group, "resilient CircuitBreaker", ours, idle)
    report.check(
        "breaker with PrometheusMetrics costs < 2x the uninstrumented call",
        exported < 2 * idle,
        f"{exported / idle:.1f}x ({exported * 1e9:.0f} ns vs {idle * 1e9:.0f} ns)",
    )


def _memory(report: Report) -> None:
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


def _redis(report: Report) -> None:
    sys.path.insert(0, str(ROOT))
    from tests._redis_server import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        print("  redis-server not found: Redis rows skipped", flush=True)
        return
    import redis

    from resilient.stores import RedisStore

    with RedisServer(binary) as server:
        client = redis.Redis.from_url(server.url)
        theirs_client = redis.Redis.from_url(server.url)
        ours = CircuitBreaker("bench-shared", window=TimeWindow(30), store=RedisStore(client))
        trusting_client = redis.Redis.from_url(server.url)
        trusting = CircuitBreaker(
            "bench-shared-trusting",
            window=TimeWindow(30),
            store=RedisStore(trusting_client, breaker_staleness=0.05),
        )
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, theirs_client)
        theirs = pybreaker.CircuitBreaker(state_storage=storage)
        execute = client.execute_command
        rows = measure_paired(
            {
                "PING (one round trip)": lambda: execute("PING"),
                "resilient CircuitBreaker(store=RedisStore).call": lambda: ours.call(work),
                "resilient ... RedisStore(breaker_staleness=0.05) .call": lambda: trusting.call(
                    work
                ),
                "pybreaker CircuitRedisStorage .call": lambda: theirs.call(work),
            }
        )
        group = "circuit breaker shared through Redis on 127.0.0.1: closed, success"
        for name, seconds in rows.items():
            report.add(group, name, seconds, baseline=name.startswith("PING"))
        ping = rows["PING (one round trip)"]
        trusted = rows["resilient ... RedisStore(breaker_staleness=0.05) .call"]
        report.check(
            "shared breaker with breaker_staleness: closed call <= 1.5x a PING",
            trusted <= 1.5 * ping,
            f"{trusted / ping:.2f}x PING (default, two round trips: "
            f"{rows['resilient CircuitBreaker(store=RedisStore).call'] / ping:.2f}x)",
        )
        client.close()
        trusting_client.close()
        theirs_client.close()


def _exporter_rows(report: Report, group: str, label: str, ours: Any, idle: float) -> None:
    """The other exporter settings, each noted with its ratio to the uninstrumented call."""
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    from resilient.instrumentation.opentelemetry import OpenTelemetryInstrumentation
    from resilient.instrumentation.prometheus import PrometheusMetrics

    exporters: dict[str, Any] = {
        "PrometheusMetrics(durations=False)": lambda: PrometheusMetrics(
            registry=CollectorRegistry(), durations=False
        ),
        "OpenTelemetryInstrumentation (SDK, durations on)": lambda: OpenTelemetryInstrumentation(
            meter_provider=MeterProvider()
        ),
        "OpenTelemetryInstrumentation(durations=False) (SDK)": lambda: OpenTelemetryInstrumentation(
            meter_provider=MeterProvider(), durations=False
        ),
    }
    for name, make in exporters.items():
        exporter = make()
        try:
            seconds = measure(ours)
        finally:
            exporter.close()
        report.add(group, f"{label}, {name}", seconds)
