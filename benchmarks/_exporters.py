"""The instrumentation settings a policy's success path is measured under, in turns.

Nobody listening, a plain subscriber (which asks for no ``CallCompleted``), and each exporter
with and without its duration histogram: ``PrometheusMetrics`` on its own registry and
``OpenTelemetryInstrumentation`` on an SDK ``MeterProvider`` with no reader. Each setting is
subscribed before its candidate's timed loop and closed after it (see
`_harness.compare_within`), so every row is measured with only its own exporter listening.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ._harness import Report, Timing, compare_within

#: Row names of the exporter settings, as they appear after the policy's label.
PROMETHEUS = "PrometheusMetrics (durations on)"
PROMETHEUS_NO_DURATIONS = "PrometheusMetrics(durations=False)"
OTEL = "OpenTelemetryInstrumentation (SDK, durations on)"
OTEL_NO_DURATIONS = "OpenTelemetryInstrumentation(durations=False) (SDK)"
IDLE = "no subscriber"


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _plain_subscriber() -> Iterator[None]:
    from resilient import instrumentation

    seen: list[object] = []
    instrumentation.subscribe(seen.append)  # asks for no CallCompleted: nothing to emit
    try:
        yield
    finally:
        instrumentation.unsubscribe(seen.append)


def _exporting(make: Callable[[], Any]) -> Callable[[], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def setting() -> Iterator[None]:
        exporter = make()
        try:
            yield
        finally:
            exporter.close()

    return setting


def _settings() -> dict[str, Callable[[], contextlib.AbstractContextManager[None]]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    from resilient.instrumentation.opentelemetry import OpenTelemetryInstrumentation
    from resilient.instrumentation.prometheus import PrometheusMetrics

    return {
        IDLE: _nothing,
        "a plain subscriber": _plain_subscriber,
        PROMETHEUS: _exporting(lambda: PrometheusMetrics(registry=CollectorRegistry())),
        PROMETHEUS_NO_DURATIONS: _exporting(
            lambda: PrometheusMetrics(registry=CollectorRegistry(), durations=False)
        ),
        OTEL: _exporting(lambda: OpenTelemetryInstrumentation(meter_provider=MeterProvider())),
        OTEL_NO_DURATIONS: _exporting(
            lambda: OpenTelemetryInstrumentation(meter_provider=MeterProvider(), durations=False)
        ),
    }


def exporter_rows(
    report: Report, group: str, label: str, ours: Callable[[], object], bare: Callable[[], object]
) -> dict[str, Timing]:
    """Measure ``ours`` under every setting, and ``bare`` alone, in turns; add the rows.

    The reference row of ``group`` is ``ours`` with nobody listening. Returns the timings by
    setting name (`IDLE`, `PROMETHEUS`, ...).
    """
    candidates: dict[
        str, tuple[Callable[[], object], Callable[[], contextlib.AbstractContextManager[object]]]
    ] = {"bare call": (bare, _nothing)}
    for name, setting in _settings().items():
        candidates[name] = (ours, setting)
    times = compare_within(candidates)
    report.add(group, "bare call", times.pop("bare call"))
    for name, timing in times.items():
        report.add(group, f"{label}, {name}", timing, baseline=name == IDLE)
    return times


def exporter_targets(report: Report, subject: str, times: dict[str, Timing]) -> None:
    """The two targets: ``PrometheusMetrics`` on and off, each < 2x the uninstrumented call."""
    report.target(
        f"{subject} with PrometheusMetrics vs uninstrumented {subject}",
        times[PROMETHEUS],
        times[IDLE],
        at_most=2.0,
        strict=True,
        peer="uninstrumented",
        detail="durations on (the default)",
    )
    report.target(
        f"{subject} with PrometheusMetrics(durations=False) vs uninstrumented {subject}",
        times[PROMETHEUS_NO_DURATIONS],
        times[IDLE],
        at_most=2.0,
        strict=True,
        peer="uninstrumented",
        headline=False,
    )
