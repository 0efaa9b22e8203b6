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
from typing import Any, Protocol, TypeVar

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
    """Report a call of ``policy`` ``name`` that ended with ``error`` (None: it returned)."""
    calls = HUB.calls.get((policy, name))
    if calls is None:
        calls = HUB.bind(policy, name)
    calls.record(outcome_of(error), duration)


# Which attribute holds a policy class's clock ("" for none), found once per class: a getattr
# that misses raises and catches an AttributeError inside, which costs more than the call.
_clock_attributes: dict[type, str] = {}


def _monotonic_of(policy: Any) -> Callable[[], float]:
    cls = type(policy)
    attribute = _clock_attributes.get(cls)
    if attribute is None:
        attribute = next((a for a in ("clock", "_clock") if hasattr(cls, a)), "")
        _clock_attributes[cls] = attribute
    clock = getattr(policy, attribute, None) if attribute else None
    if clock is None:  # an instance without one after all: look both up
        clock = getattr(policy, "clock", None) or getattr(policy, "_clock", None)
    return time.monotonic if clock is None else clock.monotonic


class Nanos(Protocol):
    """Where a policy appends the durations of timed calls (see `CallSink.nanos`).

    A list of ints, or the C extension's buffer (`resilient._speedups.Durations`).
    """

    def append(self, nanoseconds: int, /) -> object:
        """Add one duration, in integer nanoseconds."""

    def __len__(self) -> int:
        """How many durations wait to be folded."""


class CallSink:
    """Where the calls of one policy go, without event records (see `CallObserver`).

    ``durations`` False says the sink has no use for a call's duration: while every sink of a
    policy says so, the policy reads no clock and reports a successful call with `success`.
    Otherwise it calls `succeeded` (a return) or `record` (any outcome) with the duration.
    """

    __slots__ = ()

    #: Whether `succeeded` and `record` need the call's duration.
    durations: bool = True
    #: Whether its methods may raise (False: they are called without a guard).
    raises: bool = True
    #: A list (see `Nanos`) that takes the durations of successful calls in integer
    #: nanoseconds, or None.
    #: When a policy's only sink has one (and does not raise), a policy on the system clock
    #: times a successful call with `time.monotonic_ns` and appends the difference here
    #: instead of calling `succeeded`; once the list holds `FOLD_AT` items or more, it calls
    #: `fold`. Whatever reads the sink must `fold` first. Appending is one C call, atomic
    #: under the GIL, so no call is lost between threads.
    nanos: Nanos | None = None

    def success(self) -> object:
        """A call returned (its duration is not needed)."""
        return self.record("success", 0.0)

    def succeeded(self, duration: float) -> object:
        """A call returned after ``duration`` seconds."""
        return self.record("success", duration)

    def record(self, outcome: str, duration: float) -> object:  # pragma: no cover - abstract
        """A call ended with ``outcome`` (as in `CallCompleted`) after ``duration`` seconds."""
        raise NotImplementedError

    def fold(self) -> object:
        """Take in the durations appended to `nanos` so far (never raises)."""
        return None


#: How long a `CallSink.nanos` list may grow before a policy has its sink fold it.
FOLD_AT = 1024


class CallObserver:
    """A `CallCompleted` subscriber that takes the calls of each policy through a `CallSink`.

    Subscribed like any other (with ``events=CallCompleted``), but a policy does not build a
    `CallCompleted` record for it: the hub asks `bind` once for each policy name and kind, and
    the policy's call path then calls the sink directly. Exporters use it so that observing a
    call costs a counter increment rather than a record, a dispatch and a lock.
    """

    def bind(self, policy: str, name: str) -> CallSink:  # pragma: no cover - abstract
        """The sink for the calls of the policy of kind ``policy`` named ``name``."""
        raise NotImplementedError

    def __call__(self, event: Event) -> None:
        """A `CallCompleted` emitted as a record (`call_completed`) goes to the same sink."""
        if isinstance(event, CallCompleted):
            self.bind(event.policy, event.name).record(event.outcome, event.duration)


class _EventSink(CallSink):
    """Builds `CallCompleted` for a plain subscriber."""

    __slots__ = ("entry", "name", "policy")

    def __init__(self, entry: _Subscription, policy: str, name: str) -> None:
        self.entry = entry
        self.policy = policy
        self.name = name

    def record(self, outcome: str, duration: float) -> None:
        self.entry.fn(_completed(self.policy, self.name, outcome, duration))


class _Calls:
    """What a policy's call path calls, for one (kind, name): its sinks, merged.

    ``success`` (no duration), ``succeeded`` and ``record`` never raise: a sink that does is
    reported once, like a subscriber. A single sink that promises not to raise
    (``CallSink.raises`` False) is called straight, without a Python frame in between.
    """

    __slots__ = ("_record", "_succeeded", "_success", "durations", "entries", "sinks", "success")

    def __init__(self, pairs: list[tuple[_Subscription, CallSink]]) -> None:
        self.entries = tuple(entry for entry, _ in pairs)
        self.sinks = tuple(sink for _, sink in pairs)
        self.durations = any(sink.durations for sink in self.sinks)
        if len(self.sinks) == 1:
            (sink,) = self.sinks
            self._success: Callable[[], object] = sink.success
            self._succeeded: Callable[[float], object] = sink.succeeded
            self._record: Callable[[str, float], object] = sink.record
        else:
            self._success = self._fan_success
            self._succeeded = self._fan_succeeded
            self._record = self._fan_record
        safe = len(self.sinks) == 1 and not self.sinks[0].raises
        #: Report a call that returned (its duration unneeded); never raises.
        self.success: Callable[[], object] = self._success if safe else self._guarded_success

    def _fan_success(self) -> None:
        for sink in self.sinks:
            sink.success()

    def _fan_succeeded(self, duration: float) -> None:
        for sink in self.sinks:
            sink.succeeded(duration)

    def _fan_record(self, outcome: str, duration: float) -> None:
        for sink in self.sinks:
            sink.record(outcome, duration)

    def _broken(self, exc: Exception, outcome: str, duration: float) -> None:
        for entry in self.entries:
            if not entry.reported:  # reported once, not once per call
                entry.reported = True
                event = _completed("", "", outcome, duration)
                sys.unraisablehook(
                    _Unraisable(exc, f"resilient event subscriber {entry.fn!r}", event)
                )

    def _guarded_success(self) -> None:
        try:
            self._success()
        except Exception as exc:
            self._broken(exc, "success", 0.0)

    def succeeded(self, duration: float) -> None:
        """A call returned after ``duration`` seconds."""
        try:
            self._succeeded(duration)
        except Exception as exc:
            self._broken(exc, "success", duration)

    def record(self, outcome: str, duration: float) -> None:
        """A call ended with ``outcome`` after ``duration`` seconds."""
        try:
            self._record(outcome, duration)
        except Exception as exc:
            self._broken(exc, outcome, duration)


_NO_CALLS = _Calls([])


def _calls_of(policy: Any, name: str | None) -> _Calls:
    kind = policy.kind
    if not name:
        name = policy.name or kind
    calls = HUB.calls.get((kind, name))
    return calls if calls is not None else HUB.bind(kind, name)


def count_failure(key: tuple[str, str], error: BaseException) -> None:
    """Report a call of ``key`` (kind, name) that raised ``error`` (see `_Hub.counting`)."""
    calls = HUB.calls.get(key) or HUB.bind(*key)
    calls.record(outcome_of(error), 0.0)


def counted(key: tuple[str, str], fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, whose outcome goes to the calls of ``key`` (kind, name), uncounted yet.

    For a policy's inlined call path (see `_Hub.counting`), once the first attempt has
    raised: ``fn`` is the rest of the call (the retry loop, for example).
    """
    calls = HUB.calls.get(key) or HUB.bind(*key)
    try:
        result = fn(*args)
    except BaseException as exc:
        calls.record(outcome_of(exc), 0.0)
        raise
    calls.success()
    return result


async def acounted(key: tuple[str, str], fn: Callable[..., Awaitable[R]], *args: Any) -> R:
    """The async `counted`."""
    calls = HUB.calls.get(key) or HUB.bind(*key)
    try:
        result = await fn(*args)
    except BaseException as exc:
        calls.record(outcome_of(exc), 0.0)
        raise
    calls.success()
    return result


def fold(key: tuple[str, str]) -> None:
    """Have the sink of ``key`` (kind, name) take in its `CallSink.nanos` (see `_Hub.nanos`)."""
    calls = HUB.calls.get(key)
    if calls is not None:
        for sink in calls.sinks:
            sink.fold()


def clocked_failure(key: tuple[str, str], start: int, error: BaseException) -> None:
    """Report a call of ``key`` that raised ``error``, begun at ``time.monotonic_ns()`` ``start``.

    For a policy's inlined timed path (see `_Hub.nanos`).
    """
    duration = (time.monotonic_ns() - start) / 1e9
    calls = HUB.calls.get(key) or HUB.bind(*key)
    calls.record(outcome_of(error), duration)


def clocked(key: tuple[str, str], start: int, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, the rest of a call of ``key`` begun at ``time.monotonic_ns()`` ``start``.

    For a policy's inlined timed path (see `_Hub.nanos`), once the first attempt has raised:
    the outcome and the duration of the whole call go to the calls of ``key``.
    """
    try:
        result = fn(*args)
    except BaseException as exc:
        clocked_failure(key, start, exc)
        raise
    duration = (time.monotonic_ns() - start) / 1e9
    (HUB.calls.get(key) or HUB.bind(*key)).succeeded(duration)
    return result


async def aclocked(
    key: tuple[str, str], start: int, fn: Callable[..., Awaitable[R]], *args: Any
) -> R:
    """The async `clocked`."""
    try:
        result = await fn(*args)
    except BaseException as exc:
        clocked_failure(key, start, exc)
        raise
    duration = (time.monotonic_ns() - start) / 1e9
    (HUB.calls.get(key) or HUB.bind(*key)).succeeded(duration)
    return result


def timed(
    policy: Any,
    name: str | None,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """``fn(*args, **kwargs)``, reported to the `CallCompleted` subscribers.

    Policies call it instead of ``fn`` only while `HUB.timing` is set::

        return fn(*args, **kwargs) if not HUB.timing else timed(self, None, fn, args, kwargs)

    ``name`` None means the policy's own name (else its kind). The call is timed on the
    policy's clock only when a subscriber needs the duration.
    """
    calls = _calls_of(policy, name)
    if not calls.durations:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            calls.record(outcome_of(exc), 0.0)
            raise
        calls.success()
        return result
    monotonic = _monotonic_of(policy)
    start = monotonic()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        calls.record(outcome_of(exc), monotonic() - start)
        raise
    calls.succeeded(monotonic() - start)
    return result


async def atimed(
    policy: Any,
    name: str | None,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """The async `timed`: awaits ``fn(*args, **kwargs)``."""
    calls = _calls_of(policy, name)
    if not calls.durations:
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            calls.record(outcome_of(exc), 0.0)
            raise
        calls.success()
        return result
    monotonic = _monotonic_of(policy)
    start = monotonic()
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        calls.record(outcome_of(exc), monotonic() - start)
        raise
    calls.succeeded(monotonic() - start)
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

    __slots__ = (
        "_lock",
        "_table",
        "active",
        "calls",
        "counting",
        "nanos",
        "policies",
        "subscribers",
        "timing",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced, never mutated, so emit() can read them without holding the lock.
        self.subscribers: tuple[Subscriber, ...] = ()
        self._table: tuple[tuple[_Subscription, ...], _Routes] = ((), {})
        self.active = False
        self.timing = False
        #: The `_Calls` of each (kind, name) seen since the last (un)subscribe; replaced then.
        self.calls: dict[tuple[str, str], _Calls] = {}
        #: For the (kind, name) among them whose subscribers need no duration, their
        #: ``success``: what a policy's inlined success path calls (nothing else, no clock)::
        #:
        #:     if HUB.timing:
        #:         success = HUB.counting.get(key)
        #:         if success is None:
        #:             return timed(self, name, fn, args, kwargs)  # binds, or times
        #:         try:
        #:             result = fn(*args, **kwargs)
        #:         except BaseException as exc:
        #:             count_failure(key, exc)  # or counted(key, rest_of_the_call, ...)
        #:             raise
        #:         success()
        #:         return result
        self.counting: dict[tuple[str, str], Callable[[], object]] = {}
        #: For the (kind, name) whose only sink takes durations in nanoseconds (see
        #: `CallSink.nanos`), that list: a policy on the system clock times the call inline::
        #:
        #:     nanos = HUB.nanos.get(key)  # after HUB.counting missed
        #:     if nanos is None:
        #:         return timed(self, name, fn, args, kwargs)
        #:     start = time.monotonic_ns()
        #:     try:
        #:         result = fn(*args, **kwargs)
        #:     except BaseException as exc:
        #:         clocked_failure(key, start, exc)  # or clocked(key, start, rest, ...)
        #:         raise
        #:     nanos.append(time.monotonic_ns() - start)
        #:     if len(nanos) >= FOLD_AT:
        #:         fold(key)
        #:     return result
        self.nanos: dict[tuple[str, str], Nanos] = {}
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

    def bind(self, policy: str, name: str) -> _Calls:
        """The `_Calls` of policy ``name`` of kind ``policy``, made and kept on first use."""
        # ``calls`` before the table (`_publish` writes them the other way round): a binding
        # made from a table that is already stale lands in a dict that is stale too.
        calls, counting, nanos = self.calls, self.counting, self.nanos
        subscriptions = self._table[0]
        pairs: list[tuple[_Subscription, CallSink]] = []
        for entry in subscriptions:
            if not entry.timing or (entry.names is not None and name not in entry.names):
                continue
            fn = entry.fn
            sink = (
                fn.bind(policy, name)
                if isinstance(fn, CallObserver)
                else _EventSink(entry, policy, name)
            )
            pairs.append((entry, sink))
        bound = _Calls(pairs) if pairs else _NO_CALLS
        calls[(policy, name)] = bound
        if not bound.durations:
            counting[(policy, name)] = bound.success
        elif len(pairs) == 1 and not (sink := pairs[0][1]).raises and sink.nanos is not None:
            nanos[(policy, name)] = sink.nanos
        return bound

    def _publish(self, subscriptions: tuple[_Subscription, ...]) -> None:
        self._table = (subscriptions, {})
        self.counting = {}
        self.nanos = {}
        self.calls = {}
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
