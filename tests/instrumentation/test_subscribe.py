"""`subscribe(fn, *, name=None, events=None)`: filters, opt-in CallCompleted, broken subscribers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

import resilient
from resilient import instrumentation
from resilient._events import HUB
from resilient.instrumentation import (
    CallCompleted,
    CallRejected,
    CircuitStateChanged,
    Event,
    RetryScheduled,
)
from resilient.testing import FakeClock


@pytest.fixture
def listeners() -> Iterator[list[Any]]:
    subscribed: list[Any] = []
    yield subscribed
    for fn in subscribed:
        instrumentation.unsubscribe(fn)
    assert HUB.active is False
    assert HUB.timing is False


def _listen(listeners: list[Any], **filters: Any) -> list[Event]:
    seen: list[Event] = []
    instrumentation.subscribe(seen.append, **filters)
    listeners.append(seen.append)
    return seen


def test_name_filters_by_policy_name(listeners: list[Any]) -> None:
    payments = _listen(listeners, name="payments")
    both = _listen(listeners, name=["payments", "search"])
    for name in ("payments", "search", "other"):
        HUB.emit(CallRejected("bulkhead", name, "full", 0.0))
    assert [e.name for e in payments] == ["payments"]
    assert [e.name for e in both] == ["payments", "search"]


def test_events_filters_by_type_and_subclasses_match(listeners: list[Any]) -> None:
    class Special(RetryScheduled):
        pass

    retries = _listen(listeners, events=RetryScheduled)
    two = _listen(listeners, events=(CallRejected, CircuitStateChanged))
    everything = _listen(listeners, events=Event)
    events = [
        RetryScheduled("retry", "a", 1, 0.1, None),
        Special("retry", "b", 1, 0.1, None),
        CallRejected("bulkhead", "c", "full", 0.0),
        CircuitStateChanged("circuit_breaker", "d", "closed", "open"),
    ]
    for event in events:
        HUB.emit(event)
    assert retries == events[:2]
    assert two == events[2:]
    assert everything == events


def test_name_and_events_combine(listeners: list[Any]) -> None:
    seen = _listen(listeners, name="payments", events=CircuitStateChanged)
    HUB.emit(CircuitStateChanged("circuit_breaker", "payments", "closed", "open"))
    HUB.emit(CircuitStateChanged("circuit_breaker", "search", "closed", "open"))
    HUB.emit(CallRejected("circuit_breaker", "payments", "open", 1.0))
    assert [(type(e).__name__, e.name) for e in seen] == [("CircuitStateChanged", "payments")]


def test_a_breaker_listener_sees_only_its_breaker(listeners: list[Any]) -> None:
    clock = FakeClock()
    payments = resilient.CircuitBreaker(
        "payments", consecutive_failures=1, minimum_calls=1, clock=clock
    )
    search = resilient.CircuitBreaker(
        "search", consecutive_failures=1, minimum_calls=1, clock=clock
    )
    seen = _listen(listeners, name="payments", events=CircuitStateChanged)
    for breaker in (payments, search):
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
    assert [(e.name, e.old, e.new) for e in seen] == [("payments", "closed", "open")]  # type: ignore[attr-defined]


def test_subscribing_again_replaces_the_filters(listeners: list[Any]) -> None:
    seen: list[Event] = []
    instrumentation.subscribe(seen.append, name="a")
    instrumentation.subscribe(seen.append, name="b")
    listeners.append(seen.append)
    assert len(HUB.subscribers) == 1
    HUB.emit(Event("retry", "a"))
    HUB.emit(Event("retry", "b"))
    assert [e.name for e in seen] == ["b"]


def test_call_completed_is_opt_in(listeners: list[Any]) -> None:
    plain = _listen(listeners)
    everything = _listen(listeners, events=Event)
    assert HUB.timing is False
    completions = _listen(listeners, events=[CallCompleted])
    assert HUB.timing is True
    event = CallCompleted("retry", "fetch", "success", 0.25)
    HUB.emit(event)
    assert plain == []
    assert everything == []
    assert completions == [event]
    instrumentation.unsubscribe(completions.append)
    listeners.remove(completions.append)
    assert HUB.timing is False
    assert HUB.active is True


def test_no_subscriber_means_no_record_and_no_timing() -> None:
    assert HUB.active is False
    assert HUB.timing is False
    policy = resilient.Retry(attempts=2, clock=FakeClock())
    assert policy.call(lambda: 7) == 7


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"name": 3}, "name must be"),
        ({"name": ["a", 3]}, "name must be"),
        ({"events": int}, "events must be"),
        ({"events": [RetryScheduled, "x"]}, "events must be"),
        ({"events": 3}, "events must be"),
    ],
)
def test_bad_filters_are_type_errors_naming_the_argument(
    filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        instrumentation.subscribe(print, **filters)
    assert HUB.active is False


def test_an_empty_events_filter_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="events"):
        instrumentation.subscribe(print, events=[])


def test_a_raising_subscriber_does_not_break_the_call_and_is_reported_once(
    listeners: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    calls: list[Event] = []

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("subscriber bug")

    instrumentation.subscribe(broken)
    listeners.append(broken)
    good = _listen(listeners)
    attempts: list[int] = []

    @resilient.retry(attempts=3, clock=FakeClock())
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError
        return "ok"

    assert flaky() == "ok"
    assert len(calls) == 2  # both retries reached it
    assert len(good) == 2
    assert len(reported) == 1
    assert isinstance(reported[0].exc_value, RuntimeError)
    assert "subscriber" in reported[0].err_msg
