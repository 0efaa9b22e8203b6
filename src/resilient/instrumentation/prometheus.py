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

`PrometheusMetrics` subscribes itself to the events it exports (asking for `CallCompleted`,
so policies time their calls while it is subscribed) and registers on ``registry`` (default:
prometheus-client's global ``REGISTRY``):

============================================  =========  ==================================
metric                                        type       labels
============================================  =========  ==================================
``resilient_calls_total``                     counter    ``policy``, ``name``, ``outcome``
``resilient_retries_total``                   counter    ``name``
``resilient_rejections_total``                counter    ``policy``, ``name``, ``reason``
``resilient_rate_limited_total``              counter    ``name``
``resilient_call_duration_seconds``           histogram  ``policy``, ``name``
``resilient_circuit_state``                   gauge      ``name``, ``state``
``resilient_bulkhead_in_use``                 gauge      ``name``
============================================  =========  ==================================

Labels are policy names only, never keys, hosts or user ids, so cardinality stays bounded.
Counters and the histogram change as events arrive (they work in prometheus-client's
multiprocess mode); the two gauges are read at scrape time from the breakers and bulkheads
alive in the process (held by weak reference), so a healthy call pushes nothing to them. A
breaker shared through Redis is not read (a scrape does no I/O): its gauge follows the
`CircuitStateChanged` events this process sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._circuit_breaker import CircuitState
from .._events import (
    HUB,
    CallCompleted,
    CallRejected,
    CircuitStateChanged,
    Event,
    RateLimited,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
    subscribe,
    unsubscribe,
)

__all__ = ["PrometheusMetrics"]

# Every state a breaker can report, so each gets its 0/1 series from the first scrape.
_STATES = tuple(state.value for state in CircuitState)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "resilient.instrumentation.prometheus needs prometheus-client: "
            "pip install 'resilient-patterns[prometheus]'"
        ) from None
    return prometheus_client


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

    Raises:
        ImportError: prometheus-client is not installed.
        ValueError: the registry already has these metrics.
    """

    def __init__(self, registry: Any = None, namespace: str = "resilient") -> None:
        prometheus = _prometheus()
        if not isinstance(namespace, str) or not namespace.isidentifier():
            raise ValueError(f"namespace must be an identifier, got {namespace!r}")
        if registry is None:
            registry = prometheus.REGISTRY
        self.registry = registry
        self.namespace = namespace
        self._closed = False
        try:
            self._calls = prometheus.Counter(
                "calls",
                "Calls that a policy let through, by outcome.",
                ["policy", "name", "outcome"],
                namespace=namespace,
                registry=registry,
            )
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
        self._duration = prometheus.Histogram(
            "call_duration_seconds",
            "How long calls that a policy let through took, in seconds.",
            ["policy", "name"],
            namespace=namespace,
            registry=registry,
        )
        self._gauges = _StateCollector(namespace)
        registry.register(self._gauges)
        # Label children, cached: ``.labels()`` takes a lock and builds a tuple every time.
        self._completed: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._children: dict[tuple[Any, ...], Any] = {}
        # One subscription per exported event type, each straight to its handler: the hub's
        # routing table does the dispatch, and this exporter sees no other event.
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            CallCompleted: self._on_completed,
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
        for collector in (
            self._calls,
            self._retries,
            self._rejections,
            self._rate_limited,
            self._duration,
            self._gauges,
        ):
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

    def _on_completed(self, event: CallCompleted) -> None:
        key = (event.policy, event.name, event.outcome)
        children = self._completed.get(key)
        if children is None:
            children = self._completed[key] = (
                self._calls.labels(*key),
                self._child(self._duration, event.policy, event.name),
            )
        children[0].inc()
        children[1].observe(event.duration)

    def _on_retry(self, event: RetryScheduled) -> None:
        self._child(self._retries, event.name).inc()

    def _on_rejected(self, event: CallRejected) -> None:
        self._child(self._rejections, event.policy, event.name, event.reason).inc()

    def _on_budget(self, event: RetryBudgetExhaustedEvent) -> None:
        self._child(self._rejections, event.policy, event.name, "budget_exhausted").inc()

    def _on_rate_limited(self, event: RateLimited) -> None:
        self._child(self._rate_limited, event.name).inc()


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
            for state in _STATES:
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
