"""Events as stdlib log records on the ``resilient`` logger.

Circuit state changes, rejected calls, exhausted retries and budgets, deadlines, adaptive limit
changes, lost idempotency leases and dead letters are logged at WARNING; retries, fallbacks,
hedges and idempotent replays at INFO; everything else (rate limits, store errors) at DEBUG. A
store outage itself is logged once at WARNING whether or not this bridge is enabled, so the
per-call `StoreError` records stay at DEBUG.

Every record carries the event's fields in ``extra``, each under a ``resilient_`` prefix
(``record.resilient_policy``, ``record.resilient_name``, ``record.resilient_attempt``...), and
the event itself as ``record.resilient_event``, for structured (JSON) formatters. When the
logger is not enabled for an event's level, nothing at all is done: no message, no dict.

Logging is a subscriber like any other: it costs nothing until `enable_logging` subscribes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .._events import (
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
    RetriesExhausted,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
    subscribe,
    unsubscribe,
)

__all__ = ["disable_logging", "enable_logging", "log_event"]

logger = logging.getLogger("resilient")

_LEVELS: dict[type, int] = {
    CircuitStateChanged: logging.WARNING,
    CallRejected: logging.WARNING,
    RetriesExhausted: logging.WARNING,
    RetryBudgetExhaustedEvent: logging.WARNING,
    DeadlineExceededEvent: logging.WARNING,
    LimitChanged: logging.WARNING,
    IdempotencyLeaseLostEvent: logging.WARNING,
    DeadLettered: logging.WARNING,
    RetryScheduled: logging.INFO,
    IdempotentReplay: logging.INFO,
    HedgeStarted: logging.INFO,
    FallbackUsed: logging.INFO,
}


def _level(cls: type) -> int:
    level = _LEVELS.get(cls)
    if level is None:
        # A subclass takes its base's level; anything unknown is DEBUG. Cached either way.
        level = next((_LEVELS[c] for c in cls.__mro__ if c in _LEVELS), logging.DEBUG)
        _LEVELS[cls] = level
    return level


def _fields(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in getattr(klass, "__slots__", ()):
            if name not in names:
                names.append(name)
    return tuple(names)


_FIELDS: dict[type, tuple[str, ...]] = {}


def log_event(event: Event) -> None:
    """Log ``event`` on the ``resilient`` logger at the level its kind deserves."""
    cls = type(event)
    level = _level(cls)
    if not logger.isEnabledFor(level):
        return
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = _fields(cls)
    values = {name: getattr(event, name) for name in fields}
    extra: dict[str, object] = {f"resilient_{name}": value for name, value in values.items()}
    extra["resilient_event"] = event
    details = " ".join(
        f"{key}={value!r}" for key, value in values.items() if key not in ("policy", "name")
    )
    logger.log(level, "%s %s %r: %s", cls.__name__, event.policy, event.name, details, extra=extra)


def enable_logging(
    *,
    name: str | Iterable[str] | None = None,
    events: type[Event] | Iterable[type[Event]] | None = None,
) -> None:
    """Send events to the ``resilient`` logger from now on.

    Args:
        name: only the events of the policy with this name (or these names).
        events: only events of these types (see `resilient.instrumentation.subscribe`).
    """
    subscribe(log_event, name=name, events=events)


def disable_logging() -> None:
    """Stop logging events."""
    unsubscribe(log_event)
