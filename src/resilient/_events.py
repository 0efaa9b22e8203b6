"""Event records and the hub that routes them to subscribers.

Policies describe what they do in small frozen, slotted records. Emitting is guarded by one
attribute check at the call site::

    if HUB.active:
        HUB.emit(RetryScheduled(...))

so when nobody listens, no record is even built. Subscribers are plain callables; one that
raises is isolated (the exception is reported through `sys.unraisablehook`) so observability can
never break the call it observes.

Every record has ``policy`` (the kind: ``"retry"``, ``"circuit_breaker"``, ``"bulkhead"``,
``"rate_limiter"``, ``"timeout"``, ``"idempotency"``, ``"store"``, ...) and ``name`` (the policy's
own name). Names that would collide with an exception carry an ``Event`` suffix
(`DeadlineExceededEvent`, `RetryBudgetExhaustedEvent`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "HUB",
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
    "RetryBudgetExhaustedEvent",
    "RetryScheduled",
    "StoreError",
    "Subscriber",
    "subscribe",
    "unsubscribe",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event record.

    Attributes:
        policy: the kind of policy that emitted it, e.g. ``"retry"``.
        name: the name of the policy instance.
    """

    policy: str
    name: str


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """A call failed (or its result asked for a retry) and will be tried again after ``delay``."""

    attempt: int
    delay: float
    exception: BaseException | None


@dataclass(frozen=True, slots=True)
class RetriesExhausted(Event):
    """A retry policy gave up; the last exception (or result) goes to the caller.

    ``reason`` says why: ``"attempts"`` (all used), ``"max_elapsed"`` or ``"deadline"`` (the
    next sleep would have ended past it).
    """

    attempts: int
    exception: BaseException | None
    reason: str = "attempts"


@dataclass(frozen=True, slots=True)
class RetryBudgetExhaustedEvent(Event):
    """A shared retry budget refused a retry."""

    attempt: int
    exception: BaseException | None


@dataclass(frozen=True, slots=True)
class DeadlineExceededEvent(Event):
    """A deadline passed while work was in progress, or before it started."""

    timeout: float | None


@dataclass(frozen=True, slots=True)
class CircuitStateChanged(Event):
    """A circuit breaker moved from ``old`` to ``new`` (`CircuitState` values)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class CallRejected(Event):
    """A policy refused a call without running it (``reason``: ``"open"``, ``"full"``, ...)."""

    reason: str
    retry_after: float


@dataclass(frozen=True, slots=True)
class RateLimited(Event):
    """A rate limiter refused ``cost`` units for ``key``."""

    key: str
    cost: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class IdempotentReplay(Event):
    """A stored result was returned for an idempotency key instead of running the call."""

    key: str


@dataclass(frozen=True, slots=True)
class IdempotencyLeaseLostEvent(Event):
    """A call outlived its lease on ``key``; its result was not stored (another caller's is)."""

    key: str


@dataclass(frozen=True, slots=True)
class FallbackUsed(Event):
    """A `Fallback` answered in place of a call that raised ``exception``."""

    exception: BaseException


@dataclass(frozen=True, slots=True)
class DeadLettered(Event):
    """A message that its handler could not process was parked in a dead-letter queue.

    ``entry_id`` is its id in the queue; ``exception`` what the handler raised.
    """

    entry_id: str
    exception: BaseException


@dataclass(frozen=True, slots=True)
class StoreError(Event):
    """A state store failed; ``action`` says what the policy did about it."""

    operation: str
    error: BaseException
    action: str


@dataclass(frozen=True, slots=True)
class LimitChanged(Event):
    """An adaptive limit moved from ``old`` to ``new``."""

    old: int
    new: int


@dataclass(frozen=True, slots=True)
class HedgeStarted(Event):
    """A hedged call started attempt number ``attempt`` because earlier ones were slow."""

    attempt: int


Subscriber = Callable[[Event], object]


class _Hub:
    """Routes events to subscribers. ``active`` is the one check a policy pays when idle."""

    __slots__ = ("_lock", "active", "subscribers")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced, never mutated, so emit() can iterate without holding the lock.
        self.subscribers: tuple[Subscriber, ...] = ()
        self.active = False

    def subscribe(self, subscriber: Subscriber) -> None:
        if not callable(subscriber):
            raise TypeError(f"subscriber must be callable, got {subscriber!r}")
        with self._lock:
            if subscriber not in self.subscribers:
                self.subscribers = (*self.subscribers, subscriber)
            self.active = True

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self.subscribers = tuple(s for s in self.subscribers if s != subscriber)
            self.active = bool(self.subscribers)

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # a broken subscriber must not break the call
                sys.unraisablehook(
                    _Unraisable(exc, f"resilient event subscriber {subscriber!r}", event)
                )


class _Unraisable:
    __slots__ = ("err_msg", "exc_traceback", "exc_type", "exc_value", "object")

    def __init__(self, exc: BaseException, message: str, obj: object) -> None:
        self.exc_type = type(exc)
        self.exc_value: BaseException | None = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg: str | None = message
        self.object = obj


HUB = _Hub()


def subscribe(subscriber: Subscriber) -> None:
    """Send every event from now on to ``subscriber`` (a callable taking one `Event`).

    Subscribing the same callable twice has no further effect. Subscribers run synchronously in
    the thread or task that emitted the event, so they should be quick and must not block.
    """
    HUB.subscribe(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    """Stop sending events to ``subscriber``; unknown subscribers are ignored."""
    HUB.unsubscribe(subscriber)
