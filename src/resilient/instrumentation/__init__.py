"""Observability: subscribe to the events that resilient's policies emit.

```python
import resilient.instrumentation as instrumentation

seen = []
instrumentation.subscribe(seen.append)
instrumentation.unsubscribe(seen.append)
```

With no subscriber, a policy pays one attribute check per event and builds no record.
Ready-made subscribers live in `resilient.instrumentation.prometheus` and
`resilient.instrumentation.opentelemetry`.
"""

from __future__ import annotations

from .._events import (
    CallRejected,
    CircuitStateChanged,
    DeadlineExceededEvent,
    Event,
    HedgeStarted,
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

__all__ = [
    "CallRejected",
    "CircuitStateChanged",
    "DeadlineExceededEvent",
    "Event",
    "HedgeStarted",
    "IdempotentReplay",
    "LimitChanged",
    "RateLimited",
    "RetriesExhausted",
    "RetryBudgetExhaustedEvent",
    "RetryScheduled",
    "StoreError",
    "Subscriber",
    "subscribe",
    "unsubscribe",
]
