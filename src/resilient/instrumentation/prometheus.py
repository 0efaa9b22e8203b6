"""Prometheus metrics for every resilient policy, through prometheus-client.

```python
from prometheus_client import CollectorRegistry, generate_latest

import resilient
from resilient.instrumentation.prometheus import PrometheusMetrics

registry = CollectorRegistry()
metrics = PrometheusMetrics(registry=registry)
resilient.CircuitBreaker("payments").call(lambda: "ok")
assert b'resilient_calls_total{name="payments",outcome="success",policy="circuit_breaker"} 1.0' in (
    generate_latest(registry)
)
metrics.close()
```

`PrometheusMetrics` subscribes itself to the events it exports and registers on ``registry``
(default: prometheus-client's global ``REGISTRY``):

============================================  =========  ==================================
metric                                        type       labels
============================================  =========  ==================================
``resilient_calls_total``                     counter    ``policy``, ``name``, ``outcome``
``resilient_retries_total``                   counter    ``name``
``resilient_rejections_total``                counter    ``policy``, ``name``, ``reason``
``resilient_rate_limited_total``              counter    ``name``
``resilient_call_duration_seconds``           histogram  ``policy``, ``name``
                                                         (off with ``durations=False``)
``resilient_circuit_state``                   gauge      ``name``, ``state``
``resilient_bulkhead_in_use``                 gauge      ``name``
============================================  =========  ==================================

Labels are policy names only, never keys, hosts or user ids, so cardinality stays bounded.

What a call costs. A policy hands each call that it let through to this exporter directly (a
`resilient._events.CallObserver`), without building an event record. ``calls_total`` and the
histogram are kept in plain per-policy state read by a collector at scrape time, never
through prometheus-client's locked metrics on the call path. Counts are ``itertools.count``
steps (one C call under the GIL: exact under any number of threads, with no lock). A
successful call through `resilient.retry` or `resilient.CircuitBreaker` on the system clock is
timed inline with two readings of the clock of `time.monotonic_ns` (in C for a sync ``@retry``
when the extension is built) and its duration appended to a buffer (one C call); every 1024
calls, and before each scrape, that batch is counted into the buckets and an integer sum of
nanoseconds, so the sum is exact. Other calls (other clocks,
failures, other policies) are timed on the policy's clock and counted one by one.

``durations=False`` leaves the histogram out: then a policy reads no clock for this exporter
and a successful call costs one counter step, the cheapest way to count calls. The two clock
readings are most of what the histogram costs. Measured figures: docs/observability.md.

In prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), where collectors
are not aggregated across processes, the calls and durations go to prometheus-client's own
``Counter`` and ``Histogram`` instead (slower: each step takes a lock). The other counters
change as events arrive, through prometheus-client's metrics. The two gauges are read at
scrape time from the breakers and bulkheads alive in the process (held by weak reference), so
a healthy call pushes nothing to them; they are per process, and absent in multiprocess mode.
A breaker shared through Redis is not read (a scrape does no I/O): its gauge follows the
`CircuitStateChanged` events this process sees.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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
from ._calls import STATES, _Counts, _Timings

__all__ = ["PrometheusMetrics"]


_CALLS_HELP = "Calls that a policy let through, by outcome."
_DURATION_HELP = "How long calls that a policy let through took, in seconds."


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "resilient.instrumentation.prometheus needs prometheus-client: "
            "pip install 'resilient-patterns[prometheus]'"
        ) from None
    return prometheus_client


def _multiprocess() -> bool:
    """Whether prometheus-client runs in multiprocess mode (its own test, same variables)."""
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


class PrometheusMetrics:
    """Export resilient's events as Prometheus metrics (see the module docstring for the list).

    Creating it registers the metrics and subscribes it; `close` undoes both. A second
    `PrometheusMetrics` on a registry that already holds one (same namespace) is refused with
    a `ValueError` rather than sharing metrics silently: keep one per registry, or pass a
    fresh ``registry``.

    Args:
        registry: the ``prometheus_client.CollectorRegistry`` to register on (default: the
            global ``REGISTRY``).
        namespace: the prefix of every metric name (default ``"resilient"``).
        durations: export ``call_duration_seconds`` (default True). False leaves the
            histogram out: timing a call takes two clock readings, which cost about as much
            as a whole successful call through `resilient.retry`; without it a policy reads
            no clock for this exporter and a successful call costs one counter step.
        buckets: the histogram's upper bounds in seconds (default: prometheus-client's).

    Raises:
        ImportError: prometheus-client is not installed.
        ValueError: the registry already has these metrics, or ``buckets`` is not a
            non-empty increasing sequence of numbers.
    """

    def __init__(
        self,
        registry: Any = None,
        namespace: str = "resilient",
        *,
        durations: bool = True,
        buckets: Sequence[float] | None = None,
    ) -> None:
        prometheus = _prometheus()
        if not isinstance(namespace, str) or not namespace.isidentifier():
            raise ValueError(f"namespace must be an identifier, got {namespace!r}")
        if not isinstance(durations, bool):
            raise TypeError(f"durations must be a bool, got {durations!r}")
        bounds = _bounds(prometheus.Histogram.DEFAULT_BUCKETS if buckets is None else buckets)
        if registry is None:
            registry = prometheus.REGISTRY
        self.registry = registry
        self.namespace = namespace
        self.durations = durations
        self._closed = False
        self._calls: Any
        if _multiprocess():
            # Values in shared files, read by prometheus-client's multiprocess collector: only
            # its own metric classes write there (a collector's samples would be lost).
            self._calls = _DirectCalls(prometheus, namespace, registry, durations, bounds)
        else:
            self._calls = _Calls(namespace, durations, bounds)
        try:
            self._calls.register(registry)
        except ValueError as error:
            raise ValueError(
                f"registry {registry!r} already has {namespace}_calls_total: a PrometheusMetrics "
                "(or another exporter) is registered there; use that one, close() it first, or "
                "pass registry=CollectorRegistry()"
            ) from error
        self._retries = prometheus.Counter(
            "retries",
            "Retries scheduled (one per attempt after the first).",
            ["name"],
            namespace=namespace,
            registry=registry,
        )
        self._rejections = prometheus.Counter(
            "rejections",
            "Calls refused without running: open breakers, full bulkheads; retries refused "
            "by an exhausted retry budget (policy retry, reason budget_exhausted).",
            ["policy", "name", "reason"],
            namespace=namespace,
            registry=registry,
        )
        self._rate_limited = prometheus.Counter(
            "rate_limited",
            "Requests refused by a rate limiter.",
            ["name"],
            namespace=namespace,
            registry=registry,
        )
        self._gauges = _StateCollector(namespace)
        registry.register(self._gauges)
        self._children: dict[tuple[Any, ...], Any] = {}
        # One subscription per exported event type, each straight to its handler: the hub's
        # routing table does the dispatch, and this exporter sees no other event. Calls go
        # to ``self._calls`` without event records (a `CallObserver`).
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            CallCompleted: self._calls,
            RetryScheduled: self._on_retry,
            CallRejected: self._on_rejected,
            RetryBudgetExhaustedEvent: self._on_budget,
            RateLimited: self._on_rate_limited,
            CircuitStateChanged: self._gauges.changed,
        }
        for event_type, handler in self._handlers.items():
            subscribe(handler, events=event_type)

    def close(self) -> None:
        """Unsubscribe and unregister the metrics; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        for handler in self._handlers.values():
            unsubscribe(handler)
        self._calls.unregister(self.registry)
        for collector in (self._retries, self._rejections, self._rate_limited, self._gauges):
            self.registry.unregister(collector)

    def __repr__(self) -> str:
        return f"PrometheusMetrics(namespace={self.namespace!r}, closed={self._closed})"

    # -- handlers --------------------------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _on_retry(self, event: RetryScheduled) -> None:
        self._child(self._retries, event.name).inc()

    def _on_rejected(self, event: CallRejected) -> None:
        self._child(self._rejections, event.policy, event.name, event.reason).inc()

    def _on_budget(self, event: RetryBudgetExhaustedEvent) -> None:
        self._child(self._rejections, event.policy, event.name, "budget_exhausted").inc()

    def _on_rate_limited(self, event: RateLimited) -> None:
        self._child(self._rate_limited, event.name).inc()


def _bounds(buckets: Sequence[float]) -> tuple[float, ...]:
    try:
        bounds = [float(bound) for bound in buckets]
    except (TypeError, ValueError):
        raise ValueError(f"buckets must be a sequence of numbers, got {buckets!r}") from None
    if bounds and bounds[-1] == float("inf"):
        bounds.pop()
    if not bounds or any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ValueError(f"buckets must be increasing and not empty, got {buckets!r}")
    return (*bounds, float("inf"))


class _Calls(CallObserver):
    """``calls_total`` and ``call_duration_seconds``: sinks per policy, read at scrape time."""

    def __init__(self, namespace: str, durations: bool, bounds: tuple[float, ...]) -> None:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        self._counter_family = CounterMetricFamily
        self._histogram_family = HistogramMetricFamily
        self._le: Callable[[float], str] = floatToGoString
        self._calls_name = f"{namespace}_calls"
        self._duration_name = f"{namespace}_call_duration_seconds"
        self._durations = durations
        self._bounds = bounds
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Counts] = {}

    def register(self, registry: Any) -> None:
        registry.register(self)

    def unregister(self, registry: Any) -> None:
        registry.unregister(self)

    def bind(self, policy: str, name: str) -> CallSink:
        key = (policy, name)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = (
                        _Timings(policy, name, self._bounds)
                        if self._durations
                        else _Counts(policy, name)
                    )
        return series

    def _families(self) -> tuple[Any, Any]:
        return (
            self._counter_family(
                self._calls_name, _CALLS_HELP, labels=["policy", "name", "outcome"]
            ),
            self._histogram_family(self._duration_name, _DURATION_HELP, labels=["policy", "name"]),
        )

    def describe(self) -> list[Any]:
        calls, duration = self._families()
        return [calls, duration] if self._durations else [calls]

    def collect(self) -> Iterator[Any]:
        calls, duration = self._families()
        with self._lock:
            series = sorted(self._series.items())
        for (policy, name), sink in series:
            for outcome, count in sink.counts():
                calls.add_metric([policy, name, outcome], float(count))
        yield calls
        if not self._durations:
            return
        le = self._le
        for (policy, name), sink in series:
            assert isinstance(sink, _Timings)
            cumulative, total = sink.histogram()
            if cumulative[-1][1]:
                buckets = [(le(bound), float(count)) for bound, count in cumulative]
                duration.add_metric([policy, name], buckets, total)
        yield duration


class _Direct(CallSink):
    """One policy's calls on prometheus-client's own metrics (multiprocess mode)."""

    __slots__ = ("_calls", "_duration", "_outcomes", "_policy_name", "durations")

    def __init__(self, calls: Any, duration: Any, policy: str, name: str) -> None:
        self._calls = calls
        self._duration = None if duration is None else duration.labels(policy, name)
        self.durations = duration is not None
        self._outcomes: dict[str, Any] = {}
        self._policy_name = (policy, name)

    def _child(self, outcome: str) -> Any:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self._calls.labels(*self._policy_name, outcome)
        return child

    def success(self) -> None:
        self._child("success").inc()

    def record(self, outcome: str, duration: float) -> None:
        self._child(outcome).inc()
        if self._duration is not None:
            self._duration.observe(duration)


class _DirectCalls(CallObserver):
    """``calls_total`` and ``call_duration_seconds`` as prometheus-client metrics."""

    def __init__(
        self,
        prometheus: Any,
        namespace: str,
        registry: Any,
        durations: bool,
        bounds: tuple[float, ...],
    ) -> None:
        self._prometheus = prometheus
        self._namespace = namespace
        self._durations = durations
        self._bounds = bounds
        self._lock = threading.Lock()
        self._sinks: dict[tuple[str, str], _Direct] = {}
        self._metrics: list[Any] = []

    def register(self, registry: Any) -> None:
        prometheus = self._prometheus
        self._calls = prometheus.Counter(
            "calls",
            _CALLS_HELP,
            ["policy", "name", "outcome"],
            namespace=self._namespace,
            registry=registry,
        )
        self._metrics.append(self._calls)
        self._duration = None
        if self._durations:
            self._duration = prometheus.Histogram(
                "call_duration_seconds",
                _DURATION_HELP,
                ["policy", "name"],
                namespace=self._namespace,
                registry=registry,
                buckets=self._bounds,
            )
            self._metrics.append(self._duration)

    def unregister(self, registry: Any) -> None:
        for metric in self._metrics:
            registry.unregister(metric)

    def bind(self, policy: str, name: str) -> CallSink:
        key = (policy, name)
        with self._lock:
            sink = self._sinks.get(key)
            if sink is None:
                sink = self._sinks[key] = _Direct(self._calls, self._duration, policy, name)
        return sink


class _StateCollector:
    """``circuit_state`` and ``bulkhead_in_use``, read at scrape time from live policies."""

    def __init__(self, namespace: str) -> None:
        from prometheus_client.core import GaugeMetricFamily

        self._gauge_family = GaugeMetricFamily
        self._state_name = f"{namespace}_circuit_state"
        self._in_use_name = f"{namespace}_bulkhead_in_use"
        # The last state seen in events, for breakers whose state lives elsewhere (Redis).
        self._seen: dict[str, str] = {}

    def changed(self, event: CircuitStateChanged) -> None:
        self._seen[event.name] = event.new

    def describe(self) -> list[Any]:
        return [
            self._gauge_family(self._state_name, _STATE_HELP, labels=["name", "state"]),
            self._gauge_family(self._in_use_name, _IN_USE_HELP, labels=["name"]),
        ]

    def collect(self) -> Iterator[Any]:
        states: dict[str, set[str]] = {}
        in_use: dict[str, int] = {}
        for policy in HUB.tracked():
            if policy.kind == "circuit_breaker":
                if policy._remote is not None:  # shared through a store: no I/O in a scrape
                    state = self._seen.get(policy.name)
                    if state is None:
                        continue
                else:
                    state = policy.state.value
                states.setdefault(policy.name, set()).add(state)
            elif hasattr(policy, "in_use"):
                # Bulkheads sharing one name add up (as one pool would).
                in_use[policy.name] = in_use.get(policy.name, 0) + policy.in_use
        state_family = self._gauge_family(self._state_name, _STATE_HELP, labels=["name", "state"])
        for name in sorted(states):
            current = states[name]
            for state in STATES:
                state_family.add_metric([name, state], 1.0 if state in current else 0.0)
        yield state_family
        in_use_family = self._gauge_family(self._in_use_name, _IN_USE_HELP, labels=["name"])
        for name in sorted(in_use):
            in_use_family.add_metric([name], float(in_use[name]))
        yield in_use_family


_STATE_HELP = (
    "Circuit breaker state: 1 for the current state, 0 for the others "
    "(several breakers with one name: 1 for each state one of them is in)."
)
_IN_USE_HELP = "Calls holding a bulkhead slot now (bulkheads with one name added up)."
