"""Observability: subscribe to the events that resilient's policies emit.

```python
import resilient.instrumentation as instrumentation

seen = []
instrumentation.subscribe(seen.append)
instrumentation.unsubscribe(seen.append)
```

With no subscriber, a policy pays one attribute check per event and builds no record.
``subscribe(fn, name=..., events=...)`` keeps only the events of some policies or some types;
`CallCompleted` is opt-in (only subscribers that list it in ``events`` get it).
`enable_logging()` sends events to the stdlib ``resilient`` logger (state changes and
rejections at WARNING, retries at INFO, the event's fields in ``extra``). Ready exporters:
`resilient.instrumentation.prometheus.PrometheusMetrics` and
`resilient.instrumentation.opentelemetry.OpenTelemetryInstrumentation`.
"""

from __future__ import annotations

from .._events import (
    CallCompleted,
    CallRejected,
    CircuitStateChanged,
    DeadLettered,
    DeadlineExceededEvent,
    Event,
    FallbackUsed,
    HedgeStarted,
    IdempotencyLeaseLostEvent,
    IdempotentReplay,
    LimitChanged,
    RateLimited,
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
    StoreError,
    Subscriber,
    subscribe,
    unsubscribe,
)
from ._logging import disable_logging, enable_logging, log_event

#: The name the design gives the budget's event; in this namespace it cannot be mistaken for
#: the exception `resilient.RetryBudgetExhausted`. The same class as `RetryBudgetExhaustedEvent`.
RetryBudgetExhausted = RetryBudgetExhaustedEvent

__all__ = [
    "CallCompleted",
    "CallRejected",
    "CircuitStateChanged",
    "DeadLettered",
    "DeadlineExceededEvent",
    "Event",
    "FallbackUsed",
    "HedgeStarted",
    "IdempotencyLeaseLostEvent",
    "IdempotentReplay",
    "LimitChanged",
    "RateLimited",
    "RetriesExhausted",
    "RetryBudgetExhausted",
    "RetryBudgetExhaustedEvent",
    "RetryScheduled",
    "StoreError",
    "Subscriber",
    "disable_logging",
    "enable_logging",
    "log_event",
    "subscribe",
    "unsubscribe",
]
