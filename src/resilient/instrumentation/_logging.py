"""Events as stdlib log records on the ``resilient`` logger.

State transitions and rejections of calls are logged at WARNING, retries and replays at INFO,
everything else at DEBUG. Logging is a subscriber like any other: it costs nothing until
`enable_logging` subscribes it.
"""

from __future__ import annotations

import logging

from .._events import (
    CallRejected,
    CircuitStateChanged,
    DeadlineExceededEvent,
    Event,
    LimitChanged,
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    StoreError,
    subscribe,
    unsubscribe,
)

__all__ = ["disable_logging", "enable_logging", "log_event"]

logger = logging.getLogger("resilient")

_WARNING = (
    CircuitStateChanged,
    CallRejected,
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    StoreError,
    DeadlineExceededEvent,
    LimitChanged,
)


def _level(event: Event) -> int:
    if isinstance(event, _WARNING):
        return logging.WARNING
    if type(event).__name__ in {"RetryScheduled", "IdempotentReplay", "HedgeStarted"}:
        return logging.INFO
    return logging.DEBUG


def log_event(event: Event) -> None:
    """Log ``event`` on the ``resilient`` logger at the level its kind deserves."""
    level = _level(event)
    if not logger.isEnabledFor(level):
        return
    fields = {
        name: getattr(event, name)
        for name in getattr(type(event), "__slots__", ())
        if name not in ("policy", "name")
    }
    details = " ".join(f"{key}={value!r}" for key, value in fields.items())
    logger.log(
        level,
        "%s %s %r: %s",
        type(event).__name__,
        event.policy,
        event.name,
        details,
        extra={"resilient_event": event},
    )


def enable_logging() -> None:
    """Send every event to the ``resilient`` logger from now on."""
    subscribe(log_event)


def disable_logging() -> None:
    """Stop logging events."""
    unsubscribe(log_event)
