"""`OpenTelemetryInstrumentation`: the scripted scenario through the SDK's in-memory reader and
span exporter gives exactly the expected data points and span events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import resilient
from resilient._events import HUB
from resilient.instrumentation.opentelemetry import OpenTelemetryInstrumentation

from ._scenario import run_scenario


class Otel:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.tracers.get_tracer("test")
        self.instrumentation = OpenTelemetryInstrumentation(
            meter_provider=self.meters, tracer_provider=self.tracers, durations=True
        )

    def points(self, *names: str) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
        """Instrument name -> {sorted attributes: data point}, for the points of ``names``."""
        data = self.reader.get_metrics_data()
        found: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = tuple(sorted(point.attributes.items()))
                        if names and attributes and dict(attributes)["resilient.name"] not in names:
                            continue
                        found.setdefault(metric.name, {})[attributes] = point
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    otel = Otel()
    yield otel
    otel.instrumentation.close()
    assert HUB.active is False


def attrs(**pairs: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((f"resilient.{key}", value) for key, value in pairs.items()))


NAMES = ("fetch", "payments", "db", "api")


def test_the_scenario_gives_exactly_the_expected_data_points(otel: Otel) -> None:
    seen: dict[str, Any] = {}
    with otel.tracer.start_as_current_span("request"):
        kept = run_scenario(
            while_open=lambda: seen.__setitem__("open", otel.points(*NAMES)),
            while_full=lambda: seen.__setitem__("full", otel.points(*NAMES)),
        )
    points = otel.points(*NAMES)

    def values(name: str, source: Any = points) -> dict[Any, Any]:
        return {k: p.value for k, p in source[name].items()}

    assert values("resilient.calls") == {
        attrs(policy="retry", name="fetch", outcome="success"): 1,
        attrs(policy="circuit_breaker", name="payments", outcome="failure"): 2,
        attrs(policy="circuit_breaker", name="payments", outcome="success"): 1,
        attrs(policy="rate_limiter", name="api", outcome="success"): 1,
    }
    assert values("resilient.retries") == {attrs(name="fetch"): 2}
    assert values("resilient.rejections") == {
        attrs(policy="circuit_breaker", name="payments", reason="open"): 1,
        attrs(policy="bulkhead", name="db", reason="full"): 1,
    }
    assert values("resilient.rate_limited") == {attrs(name="api"): 1}
    durations = {
        k: (p.count, round(p.sum, 6)) for k, p in points["resilient.call.duration"].items()
    }
    assert durations == {
        attrs(policy="retry", name="fetch"): (1, 1.3),
        attrs(policy="circuit_breaker", name="payments"): (3, 0.6),
        attrs(policy="rate_limiter", name="api"): (1, 0.0),
    }
    states = ("closed", "open", "half_open", "forced_open", "disabled")
    assert values("resilient.circuit.state", seen["open"]) == {
        attrs(name="payments", state=s): int(s == "open") for s in states
    }
    assert values("resilient.circuit.state") == {
        attrs(name="payments", state=s): int(s == "closed") for s in states
    }
    assert values("resilient.bulkhead.in_use", seen["full"]) == {attrs(name="db"): 1}
    assert values("resilient.bulkhead.in_use") == {attrs(name="db"): 0}

    [span] = otel.exporter.get_finished_spans()
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    retry = {"resilient.policy": "retry", "resilient.name": "fetch"}
    breaker = {"resilient.policy": "circuit_breaker", "resilient.name": "payments"}

    def changed(old: str, new: str) -> tuple[str, dict[str, Any]]:
        return (
            "resilient.circuit_state_changed",
            {**breaker, "resilient.old": old, "resilient.new": new},
        )

    assert events == [
        (
            "resilient.retry",
            {
                **retry,
                "resilient.attempt": 1,
                "resilient.delay": 0.5,
                "resilient.exception": "ConnectionError",
            },
        ),
        (
            "resilient.retry",
            {
                **retry,
                "resilient.attempt": 2,
                "resilient.delay": 0.5,
                "resilient.exception": "ConnectionError",
            },
        ),
        changed("closed", "open"),
        (
            "resilient.rejected",
            {**breaker, "resilient.reason": "open", "resilient.retry_after": 10.0},
        ),
        changed("open", "half_open"),
        changed("half_open", "closed"),
        (
            "resilient.rejected",
            {
                "resilient.policy": "bulkhead",
                "resilient.name": "db",
                "resilient.reason": "full",
                "resilient.retry_after": 0.0,
            },
        ),
        (
            "resilient.rejected",
            {
                "resilient.policy": "rate_limiter",
                "resilient.name": "api",
                "resilient.reason": "rate_limited",
                "resilient.retry_after": 1.0,
            },
        ),
    ]
    del kept


def test_no_span_event_without_a_recording_span(otel: Otel) -> None:
    run_scenario()
    assert otel.exporter.get_finished_spans() == ()
    assert otel.points("fetch")["resilient.retries"]  # the metrics still count


def test_close_is_idempotent_and_a_second_instance_warns(otel: Otel) -> None:
    with pytest.warns(RuntimeWarning, match="exported twice"):
        second = OpenTelemetryInstrumentation(meter_provider=otel.meters)
    second.close()
    second.close()
    otel.instrumentation.close()
    assert HUB.active is False
    resilient.Bulkhead(1, name="after").call(lambda: None)
    assert "resilient.calls" not in otel.points("after")


def test_works_with_the_api_alone() -> None:
    instrumentation = OpenTelemetryInstrumentation()  # no SDK: no-op instruments
    try:
        run_scenario()
    finally:
        instrumentation.close()


def test_without_durations_calls_are_counted_and_no_histogram_is_recorded() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    instrumentation = OpenTelemetryInstrumentation(meter_provider=meters, durations=False)
    try:
        breaker = resilient.CircuitBreaker("otel-counted")
        through = breaker(lambda: None)
        for _ in range(3):
            through()
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        data = reader.get_metrics_data()
    finally:
        instrumentation.close()
    points: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = tuple(sorted(point.attributes.items()))
                    if dict(attributes).get("resilient.name") == "otel-counted":
                        points.setdefault(metric.name, {})[attributes] = point.value
    del points["resilient.circuit.state"]
    assert points == {
        "resilient.calls": {
            attrs(policy="circuit_breaker", name="otel-counted", outcome="success"): 3,
            attrs(policy="circuit_breaker", name="otel-counted", outcome="failure"): 1,
        }
    }
    assert HUB.active is False
