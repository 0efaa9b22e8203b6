"""OpenTelemetry metrics and span events for every resilient policy, on opentelemetry-api only.

```python
import resilient
from resilient.instrumentation.opentelemetry import OpenTelemetryInstrumentation

otel = OpenTelemetryInstrumentation()  # the global meter and tracer providers
resilient.Bulkhead(4, name="db").call(lambda: "ok")
otel.close()
```

The instruments mirror `resilient.instrumentation.prometheus` (an OpenTelemetry Prometheus
exporter turns the dots into underscores and adds the unit suffixes):

==============================  ===================  =========  ===============================
instrument                      kind                 unit       attributes
==============================  ===================  =========  ===============================
``resilient.calls``             counter              ``{call}``  policy, name, outcome
``resilient.retries``           counter              ``{retry}`` name
``resilient.rejections``        counter              ``{call}``  policy, name, reason
``resilient.rate_limited``      counter              ``{call}``  name
``resilient.call.duration``     histogram            ``s``       policy, name
``resilient.circuit.state``     observable gauge     ``1``       name, state
``resilient.bulkhead.in_use``   observable gauge     ``{call}``  name
==============================  ===================  =========  ===============================

Attribute keys carry a ``resilient.`` prefix (``resilient.policy``, ``resilient.name``...).
The two gauges are observed at collection time from the breakers and bulkheads alive in the
process (a breaker shared through Redis is not read then: its gauge follows the state
changes this process sees). On the current span (when it is recording) it adds the events
``resilient.retry`` (attempt, delay, exception type), ``resilient.rejected`` (reason,
retry_after) and ``resilient.circuit_state_changed`` (old, new), so a trace shows why a
request was slow or refused.

Only opentelemetry-api is needed: without an SDK the instruments are no-ops, and they bind
to the providers once an SDK sets them. Pass providers explicitly (tests do) or rely on the
global ones.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from .._events import (
    HUB,
    CallCompleted,
    CallObserver,
    CallRejected,
    CallSink,
    CircuitStateChanged,
    Event,
    RateLimited,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
    subscribe,
    unsubscribe,
)
from ._calls import STATES, _Counts

__all__ = ["OpenTelemetryInstrumentation"]


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "resilient.instrumentation.opentelemetry needs opentelemetry-api: "
            "pip install 'resilient-patterns[otel]'"
        ) from None
    return metrics, trace


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resilient-patterns")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


class OpenTelemetryInstrumentation:
    """Export resilient's events as OpenTelemetry metrics and span events.

    Creating it creates the instruments and subscribes it (asking for `CallCompleted`);
    `close` unsubscribes it and stops the gauges, and calling it again does nothing. A
    second instance while one is open would count every event twice: it still works, but
    warns (`RuntimeWarning`).

    Args:
        meter_provider: an ``opentelemetry.metrics.MeterProvider`` (default: the global one).
        tracer_provider: an ``opentelemetry.trace.TracerProvider`` (default: the global one);
            span events go on the current span, whichever provider made it.
        durations: record ``resilient.call.duration`` (default True). Each call then
            costs two clock readings and one histogram ``record``, which in the
            OpenTelemetry SDK takes locks and attribute lookups and costs tens of times a
            successful call through `resilient.retry`; False leaves the histogram out and a
            successful call costs one counter step.

    Raises:
        ImportError: opentelemetry-api is not installed.
    """

    _open: ClassVar[weakref.WeakSet[OpenTelemetryInstrumentation]] = weakref.WeakSet()

    def __init__(
        self, meter_provider: Any = None, tracer_provider: Any = None, *, durations: bool = True
    ) -> None:
        if not isinstance(durations, bool):
            raise TypeError(f"durations must be a bool, got {durations!r}")
        metrics, trace = _api()
        self._trace = trace
        version = _version()
        meter = metrics.get_meter("resilient", version, meter_provider=meter_provider)
        self.meter = meter
        self.tracer = trace.get_tracer("resilient", version, tracer_provider=tracer_provider)
        self._closed = False
        # Calls are counted in plain per-policy counters (see ``_calls``) and observed at
        # collection time: a successful call costs one counter step, not an SDK ``add``.
        self._durations = durations
        self._observer = _Calls(self)
        meter.create_observable_counter(
            "resilient.calls",
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Calls that a policy let through.",
        )
        self._retries = meter.create_counter(
            "resilient.retries", unit="{retry}", description="Retries scheduled."
        )
        self._rejections = meter.create_counter(
            "resilient.rejections",
            unit="{call}",
            description="Calls refused without running, and retries refused by a budget.",
        )
        self._rate_limited = meter.create_counter(
            "resilient.rate_limited", unit="{call}", description="Requests refused by a limiter."
        )
        self._duration: Any = None
        if durations:
            self._duration = meter.create_histogram(
                "resilient.call.duration",
                unit="s",
                description="How long calls that a policy let through took.",
            )
        meter.create_observable_gauge(
            "resilient.circuit.state",
            callbacks=[self._observe_states],
            unit="1",
            description="Circuit breaker state: 1 for the current state, 0 for the others.",
        )
        meter.create_observable_gauge(
            "resilient.bulkhead.in_use",
            callbacks=[self._observe_in_use],
            unit="{call}",
            description="Calls holding a bulkhead slot now.",
        )
        # The last state seen in events, for breakers whose state lives elsewhere (Redis).
        self._seen: dict[str, str] = {}
        # Attribute dicts, cached: the same few combinations recur on every call.
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}
        self._handlers: dict[type, Callable[[Any], None]] = {
            CallCompleted: self._observer,
            RetryScheduled: self._on_retry,
            CallRejected: self._on_rejected,
            RetryBudgetExhaustedEvent: self._on_budget,
            RateLimited: self._on_rate_limited,
            CircuitStateChanged: self._on_state_changed,
        }
        if len(self._open):
            warnings.warn(
                "another OpenTelemetryInstrumentation is open: every event is now exported "
                "twice; close() the first one",
                RuntimeWarning,
                stacklevel=2,
            )
        self._open.add(self)
        # One subscription per exported event type, each straight to its handler.
        for event_type, handler in self._handlers.items():
            subscribe(handler, events=event_type)

    def close(self) -> None:
        """Unsubscribe and stop observing the gauges; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        for handler in self._handlers.values():
            unsubscribe(handler)
        self._open.discard(self)

    def __repr__(self) -> str:
        return f"OpenTelemetryInstrumentation(closed={self._closed})"

    # -- metrics ---------------------------------------------------------------------------------

    def _attrs(self, *pairs: str) -> dict[str, str]:
        attributes = self._attributes.get(pairs)
        if attributes is None:
            attributes = self._attributes[pairs] = {
                f"resilient.{pairs[i]}": pairs[i + 1] for i in range(0, len(pairs), 2)
            }
        return attributes

    def _on_retry(self, event: RetryScheduled) -> None:
        self._retries.add(1, self._attrs("name", event.name))
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "resilient.retry",
                {
                    "resilient.policy": event.policy,
                    "resilient.name": event.name,
                    "resilient.attempt": event.attempt,
                    "resilient.delay": event.delay,
                    "resilient.exception": _type_name(event.exception),
                },
            )

    def _reject(self, event: Event, reason: str, retry_after: float) -> None:
        self._rejections.add(
            1, self._attrs("policy", event.policy, "name", event.name, "reason", reason)
        )
        self._rejected_span_event(event, reason, retry_after)

    def _rejected_span_event(self, event: Event, reason: str, retry_after: float) -> None:
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "resilient.rejected",
                {
                    "resilient.policy": event.policy,
                    "resilient.name": event.name,
                    "resilient.reason": reason,
                    "resilient.retry_after": retry_after,
                },
            )

    def _on_rejected(self, event: CallRejected) -> None:
        self._reject(event, event.reason, event.retry_after)

    def _on_budget(self, event: RetryBudgetExhaustedEvent) -> None:
        self._reject(event, "budget_exhausted", 0.0)

    def _on_rate_limited(self, event: RateLimited) -> None:
        self._rate_limited.add(1, self._attrs("name", event.name))
        self._rejected_span_event(event, "rate_limited", event.retry_after)

    def _on_state_changed(self, event: CircuitStateChanged) -> None:
        self._seen[event.name] = event.new
        span = self._trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "resilient.circuit_state_changed",
                {
                    "resilient.policy": event.policy,
                    "resilient.name": event.name,
                    "resilient.old": event.old,
                    "resilient.new": event.new,
                },
            )

    # -- observed at collection time -----------------------------------------------------------

    def _observe_calls(self, options: Any) -> Iterable[Any]:
        # Still observed after close(), as a synchronous counter's sums would still be
        # exported: the calls counted while it was open (close() stops the counting).
        from opentelemetry.metrics import Observation

        return [
            Observation(count, self._attrs("policy", policy, "name", name, "outcome", outcome))
            for (policy, name), series in self._observer.series()
            for outcome, count in series.counts()
        ]

    def _observe_states(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        if self._closed:
            return []
        states: dict[str, set[str]] = {}
        for policy in HUB.tracked():
            if policy.kind != "circuit_breaker":
                continue
            if policy._remote is not None:  # shared through a store: no I/O in a collection
                state = self._seen.get(policy.name)
                if state is None:
                    continue
            else:
                state = policy.state.value
            states.setdefault(policy.name, set()).add(state)
        return [
            Observation(1 if state in current else 0, self._attrs("name", name, "state", state))
            for name, current in sorted(states.items())
            for state in STATES
        ]

    def _observe_in_use(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        if self._closed:
            return []
        in_use: dict[str, int] = {}
        for policy in HUB.tracked():
            if policy.kind != "circuit_breaker" and hasattr(policy, "in_use"):
                in_use[policy.name] = in_use.get(policy.name, 0) + policy.in_use
        return [Observation(v, self._attrs("name", n)) for n, v in sorted(in_use.items())]


class _Timed(_Counts):
    """One policy's calls, counted, and their durations recorded on the histogram."""

    __slots__ = ("_attributes", "_histogram")

    durations = True
    raises = True  # the SDK's ``record`` is not ours

    def __init__(self, policy: str, name: str, histogram: Any, attributes: Any) -> None:
        super().__init__(policy, name)
        self._histogram = histogram
        self._attributes = attributes

    def succeeded(self, duration: float) -> None:
        self.success()
        self._histogram.record(duration, self._attributes)

    def record(self, outcome: str, duration: float) -> None:
        next(self._outcome(outcome))
        self._histogram.record(duration, self._attributes)


class _Calls(CallObserver):
    """The `CallObserver` of an `OpenTelemetryInstrumentation`: a sink per policy."""

    def __init__(self, owner: OpenTelemetryInstrumentation) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Counts] = {}

    def bind(self, policy: str, name: str) -> CallSink:
        key = (policy, name)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.get(key)
                if series is None:
                    owner = self._owner
                    histogram = owner._duration
                    series = self._series[key] = (
                        _Counts(policy, name)
                        if histogram is None
                        else _Timed(
                            policy, name, histogram, owner._attrs("policy", policy, "name", name)
                        )
                    )
        return series

    def series(self) -> list[tuple[tuple[str, str], _Counts]]:
        with self._lock:
            return sorted(self._series.items())


def _type_name(error: BaseException | None) -> str:
    return "" if error is None else type(error).__qualname__
