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
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")

__all__ = [
    "HUB",
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


@dataclass(frozen=True, slots=True)
class CallCompleted(Event):
    """A call that a policy let through has ended, after ``duration`` seconds.

    ``outcome`` is ``"success"`` (it returned), ``"failure"`` (it raised an exception),
    ``"timeout"`` (it raised a `TimeoutError`, such as `resilient.DeadlineExceeded`) or
    ``"cancelled"`` (cancellation, `KeyboardInterrupt`...). Only calls that ran are reported:
    a rejected call is a `CallRejected` or `RateLimited` event instead.

    Opt-in: emitted only while a subscriber lists `CallCompleted` in its ``events`` filter,
    so that the success path of every policy pays one flag check (`HUB.timing`) otherwise.
    """

    outcome: str
    duration: float


def outcome_of(error: BaseException | None) -> str:
    """The `CallCompleted` outcome of a call that raised ``error`` (None: it returned)."""
    if error is None:
        return "success"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "failure" if isinstance(error, Exception) else "cancelled"


# A frozen dataclass's __init__ sets each field through ``object.__setattr__``, several times
# slower than the slots' own descriptors: `CallCompleted`, built on every call while timing is
# on, is built through them.
_new_event = object.__new__
_set_policy = vars(Event)["policy"].__set__
_set_name = vars(Event)["name"].__set__
_set_outcome = vars(CallCompleted)["outcome"].__set__
_set_duration = vars(CallCompleted)["duration"].__set__


def _completed(policy: str, name: str, outcome: str, duration: float) -> CallCompleted:
    """``CallCompleted(policy, name, outcome, duration)``, built faster."""
    event: CallCompleted = _new_event(CallCompleted)
    _set_policy(event, policy)
    _set_name(event, name)
    _set_outcome(event, outcome)
    _set_duration(event, duration)
    return event


def call_completed(policy: str, name: str, duration: float, error: BaseException | None) -> None:
    """Emit `CallCompleted` for a call that ended with ``error`` (None: it returned)."""
    HUB.emit(_completed(policy, name, outcome_of(error), duration))


def _monotonic_of(policy: Any) -> Callable[[], float]:
    clock = getattr(policy, "clock", None) or getattr(policy, "_clock", None)
    return time.monotonic if clock is None else clock.monotonic


def timed(
    policy: Any,
    name: str | None,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """``fn(*args, **kwargs)``, timed on the policy's clock and reported as `CallCompleted`.

    Policies call it instead of ``fn`` only while `HUB.timing` is set::

        return fn(*args, **kwargs) if not HUB.timing else timed(self, None, fn, args, kwargs)

    ``name`` None means the policy's own name (else its kind).
    """
    monotonic = _monotonic_of(policy)
    start = monotonic()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        call_completed(policy.kind, name or policy.name or policy.kind, monotonic() - start, exc)
        raise
    end = monotonic()
    HUB.emit(_completed(policy.kind, name or policy.name or policy.kind, "success", end - start))
    return result


async def atimed(
    policy: Any,
    name: str | None,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """The async `timed`: awaits ``fn(*args, **kwargs)``."""
    monotonic = _monotonic_of(policy)
    start = monotonic()
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        call_completed(policy.kind, name or policy.name or policy.kind, monotonic() - start, exc)
        raise
    end = monotonic()
    HUB.emit(_completed(policy.kind, name or policy.name or policy.kind, "success", end - start))
    return result


Subscriber = Callable[[Event], object]


class _Subscription:
    """One subscriber and its filters; ``reported`` is set once it has raised."""

    __slots__ = ("fn", "names", "reported", "types")

    def __init__(
        self,
        fn: Subscriber,
        names: frozenset[str] | None,
        types: tuple[type[Event], ...] | None,
    ) -> None:
        self.fn = fn
        self.names = names
        self.types = types
        self.reported = False

    def wants(self, cls: type[Event]) -> bool:
        if self.types is None:
            return not issubclass(cls, CallCompleted)
        if issubclass(cls, CallCompleted):
            # Opt-in: only a filter that names CallCompleted (or a subclass) asks for it.
            return any(issubclass(t, CallCompleted) and issubclass(cls, t) for t in self.types)
        return issubclass(cls, self.types)

    @property
    def timing(self) -> bool:
        return self.types is not None and any(issubclass(t, CallCompleted) for t in self.types)


_Routes = dict[type, tuple[_Subscription, ...]]


def _check_names(name: str | Iterable[str] | None) -> frozenset[str] | None:
    if name is None:
        return None
    if isinstance(name, str):
        return frozenset((name,))
    try:
        names = frozenset(name)
    except TypeError:
        raise TypeError(f"name must be a str, an iterable of str or None, got {name!r}") from None
    for item in names:
        if not isinstance(item, str):
            raise TypeError(f"name must be a str, an iterable of str or None, got {name!r}")
    return names


_Types = type[Event] | Iterable[type[Event]] | None


def _check_types(events: _Types) -> tuple[type[Event], ...] | None:
    if events is None:
        return None
    items = (events,) if isinstance(events, type) else events
    try:
        types = tuple(items)
    except TypeError:
        raise TypeError(
            f"events must be an Event type, an iterable of them or None, got {events!r}"
        ) from None
    for item in types:
        if not (isinstance(item, type) and issubclass(item, Event)):
            raise TypeError(
                f"events must be an Event type, an iterable of them or None, got {events!r}"
            )
    if not types:
        raise ValueError("events must name at least one Event type, got an empty iterable")
    return types


class _Hub:
    """Routes events to subscribers.

    ``active`` is the one check a policy pays when nobody listens; ``timing`` says whether a
    subscriber asked for `CallCompleted` (a policy reads its clock around a call only then).
    Each event type's list of interested subscriptions is computed on its first emit and kept
    until the next (un)subscribe, so filtering costs a dict lookup and, for subscriptions
    with a ``name`` filter, one set lookup.
    """

    __slots__ = ("_lock", "_table", "active", "policies", "subscribers", "timing")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced, never mutated, so emit() can read them without holding the lock.
        self.subscribers: tuple[Subscriber, ...] = ()
        self._table: tuple[tuple[_Subscription, ...], _Routes] = ((), {})
        self.active = False
        self.timing = False
        #: Circuit breakers and bulkheads alive in this process (weak references), whose
        #: state exporters read at scrape time rather than on every call.
        self.policies: weakref.WeakSet[Any] = weakref.WeakSet()

    def track(self, policy: object) -> None:
        """Remember ``policy`` (weakly) for exporters that read its state at scrape time."""
        with self._lock:
            self.policies.add(policy)

    def tracked(self) -> list[Any]:
        """The tracked policies still alive (a copy, safe to iterate)."""
        with self._lock:
            return list(self.policies)

    def _publish(self, subscriptions: tuple[_Subscription, ...]) -> None:
        self._table = (subscriptions, {})
        self.subscribers = tuple(s.fn for s in subscriptions)
        self.timing = any(s.timing for s in subscriptions)
        self.active = bool(subscriptions)

    def subscribe(
        self,
        subscriber: Subscriber,
        name: str | Iterable[str] | None = None,
        events: type[Event] | Iterable[type[Event]] | None = None,
    ) -> None:
        if not callable(subscriber):
            raise TypeError(f"subscriber must be callable, got {subscriber!r}")
        entry = _Subscription(subscriber, _check_names(name), _check_types(events))
        with self._lock:
            current = self._table[0]
            others = tuple(s for s in current if s.fn != subscriber)
            if len(others) == len(current):
                self._publish((*current, entry))
            else:  # subscribed again: the new filters replace the old, in the same place
                self._publish(tuple(entry if s.fn == subscriber else s for s in current))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._publish(tuple(s for s in self._table[0] if s.fn != subscriber))

    # Reached through the hub, so that a policy module needs no import besides ``HUB``.
    timed = staticmethod(timed)
    atimed = staticmethod(atimed)

    def emit(self, event: Event) -> None:
        subscriptions, routes = self._table
        cls = type(event)
        route = routes.get(cls)
        if route is None:
            route = routes[cls] = tuple(s for s in subscriptions if s.wants(cls))
        for entry in route:
            names = entry.names
            if names is not None and event.name not in names:
                continue
            try:
                entry.fn(event)
            except Exception as exc:  # a broken subscriber must not break the call
                if not entry.reported:  # reported once, not once per event
                    entry.reported = True
                    sys.unraisablehook(
                        _Unraisable(exc, f"resilient event subscriber {entry.fn!r}", event)
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


def subscribe(
    subscriber: Subscriber,
    *,
    name: str | Iterable[str] | None = None,
    events: type[Event] | Iterable[type[Event]] | None = None,
) -> None:
    """Send events from now on to ``subscriber`` (a callable taking one `Event`).

    Args:
        subscriber: the callable; it runs synchronously in the thread or task that emitted the
            event, so it should be quick and must not block.
        name: only events of the policy with this name (or of any of these names).
        events: only events of this type or these types (subclasses match). `CallCompleted`
            is opt-in: it is delivered only to subscribers that list it here, and policies
            time their calls only while such a subscriber exists.

    Subscribing the same callable again replaces its filters. A subscriber that raises is
    reported once through `sys.unraisablehook` and never breaks the call it observes.

    Raises:
        TypeError: ``subscriber`` is not callable, or a filter has the wrong type.
        ValueError: ``events`` is an empty iterable.
    """
    HUB.subscribe(subscriber, name, events)


def unsubscribe(subscriber: Subscriber) -> None:
    """Stop sending events to ``subscriber``; unknown subscribers are ignored."""
    HUB.unsubscribe(subscriber)
